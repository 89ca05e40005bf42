"""``crackseg loop bench``: light at import time (the bench imports torch and MLflow only when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

loop_app = typer.Typer(help="Measure the feedback loop.", no_args_is_help=True)

FOLDER = "a flat images/ + masks/ folder (masks 0/255, any size)"


@loop_app.command("bench")
def bench_cmd(
    feedback: Annotated[Path, typer.Option(help=f"corrected photos sent as feedback: {FOLDER}")],
    eval_dir: Annotated[
        Path, typer.Option("--eval", help=f"photos of the users' kind, never trained on: {FOLDER}")
    ],
    out: Annotated[Path, typer.Option(help="the report JSON")],
    base_eval: Annotated[
        Path | None, typer.Option(help=f"the gate's fixed base set: {FOLDER} (default: synthetic)")
    ] = None,
    base_train: Annotated[
        Path | None,
        typer.Option(help=f"base training data replayed while fine-tuning: {FOLDER} (default: synthetic)"),
    ] = None,
    champion: Annotated[
        Path | None,
        typer.Option(help="model folder served before (default: models/default, else models/starter)"),
    ] = None,
    work: Annotated[
        Path | None, typer.Option(help="scratch folder, emptied first (default: state/loop-bench)")
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option(help="retraining params (default: the product's services/up/retrain-params.yaml)"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="the retrain seed (overrides the params file's)")] = None,
) -> None:
    """Run the real local loop once on FEEDBACK and report the served model before/after on EVAL and BASE_EVAL."""
    from services.retrain.bench import PRODUCT_PARAMS, REPO, BenchConfig, BenchInputError, run_bench, table

    cfg = BenchConfig(
        feedback=feedback,
        eval=eval_dir,
        out=out,
        base_eval=base_eval,
        base_train=base_train,
        champion=champion,
        work=work or REPO / "state" / "loop-bench",
        params=params or PRODUCT_PARAMS,
        seed=seed,
    )
    try:
        report = run_bench(cfg)
    except BenchInputError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(table(report))
    typer.echo(f"written: {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(loop_app, name="loop")
