"""``crackseg serve``: the predictor. Imports stay light here; torch and kserve load inside the command."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: Annotated[
            str | None,
            typer.Option(
                "--model",
                help="model directory or models:/crackseg@champion (default: $CRACKSEG_MODEL_SOURCE)",
            ),
        ] = None,
        port: Annotated[
            int | None, typer.Option("--port", help="HTTP port (default: $CRACKSEG_HTTP_PORT or 8000)")
        ] = None,
        host: Annotated[str | None, typer.Option("--host", help="bind address (default 0.0.0.0)")] = None,
    ) -> None:
        """Serve the model: KServe V1/V2 and the crackseg API (/ping, /predict, /save-for-retrain, /metrics)."""
        # KServe parses sys.argv when imported; our options are not its options.
        sys.argv = sys.argv[:1]
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from pydantic import ValidationError

        from services.predictor.errors import PredictorError
        from services.predictor.server import serve as run_server
        from services.predictor.settings import Settings

        overrides: dict[str, object] = {}
        if model is not None:
            overrides["model_source"] = model
        if port is not None:
            overrides["http_port"] = port
        if host is not None:
            overrides["host"] = host
        try:
            settings = Settings(**overrides)  # type: ignore[arg-type]
        except ValidationError as e:
            raise typer.BadParameter(
                f"invalid settings (give --model or set CRACKSEG_MODEL_SOURCE): {e}"
            ) from e
        try:
            run_server(settings)
        except PredictorError as e:
            typer.echo(f"error: {e.message}", err=True)
            raise typer.Exit(2) from e
