"""``crackseg predict PATH... --out DIR``: imports stay light here; torch loads only for a local model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, cast

import typer

DEFAULT_MODEL = "models/default"


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        paths: Annotated[
            list[str], typer.Argument(help="photos, folders (recursive) or globs ('site/**/*.jpg')")
        ],
        out: Annotated[Path, typer.Option("--out", help="output folder (created; a second run resumes it)")],
        model: Annotated[
            str | None,
            typer.Option(
                "--model",
                help=f"model directory or models:/ URI, run in this process "
                f"(default: $CRACKSEG_MODEL_SOURCE, else {DEFAULT_MODEL})",
            ),
        ] = None,
        server: Annotated[
            str | None, typer.Option("--server", help="a running predictor's URL, e.g. http://127.0.0.1:8000")
        ] = None,
        pixel_size: Annotated[
            float | None,
            typer.Option(
                "--pixel-size", min=1e-6, help="mm per pixel: adds mm columns and grades by surface"
            ),
        ] = None,
        surface: Annotated[
            str, typer.Option("--surface", help="asphalt or concrete (severity rule)")
        ] = "asphalt",
        force: Annotated[bool, typer.Option("--force", help="redo photos that are already done")] = False,
        jobs: Annotated[
            int | None,
            typer.Option(
                "--jobs", min=1, max=32, help="photos in flight (default: 2 local, 4 with --server)"
            ),
        ] = None,
        progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    ) -> None:
        """Segment and measure many photos: masks, overlays, report.csv, cracks.csv and report.html in --out.

        Exit code 0 when every photo succeeded, 1 when some failed (each failure is a row with its error),
        2 when the run could not start.
        """
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from services.batch.engines import Engine, EngineError, LocalEngine, ServerEngine
        from services.batch.inputs import InputError, find_photos
        from services.batch.results import RunOptions, check_options
        from services.batch.run import run_batch
        from services.common.severity import SURFACES, Surface

        def fail(message: str) -> typer.Exit:
            typer.echo(f"error: {message}", err=True)
            return typer.Exit(2)

        if model is not None and server is not None:
            raise fail("give --model or --server, not both")
        if surface not in SURFACES:
            raise fail(f"unknown --surface {surface!r}; valid: {', '.join(SURFACES)}")
        chosen = cast(Surface, surface)
        try:
            photos = find_photos(paths, exclude=out)
        except InputError as e:
            raise fail(str(e)) from e
        try:
            if server is not None:
                engine_id = f"server {server.rstrip('/')}"
                engine: Engine = ServerEngine(
                    server, pixel_size, chosen, token=os.environ.get("CRACKSEG_API_TOKEN")
                )
            else:
                source = model or os.environ.get("CRACKSEG_MODEL_SOURCE") or DEFAULT_MODEL
                engine_id = f"model {source}"
                engine = LocalEngine(source, pixel_size, chosen)
        except EngineError as e:
            raise fail(str(e)) from e
        try:
            try:
                out.mkdir(parents=True, exist_ok=True)
                check_options(out, RunOptions(engine=engine_id, mm_per_px=pixel_size, surface=surface), force)
            except (OSError, ValueError) as e:
                raise fail(str(e)) from e
            summary = run_batch(
                photos, engine, out, force=force, jobs=jobs or (4 if server else 2), progress=progress
            )
        finally:
            engine.close()
        typer.echo(summary.line(out))
        raise typer.Exit(0 if summary.failed == 0 else 1)
