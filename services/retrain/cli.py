"""``crackseg retrain trigger|run|status`` and ``crackseg model rollback``. Light at import time (no torch)."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from services.retrain import events
from services.retrain.errors import RetrainError

retrain_app = typer.Typer(help="The feedback → retraining loop.", no_args_is_help=True)
model_app = typer.Typer(help="Registry operations on the served model.", no_args_is_help=True)


def _fail(e: Exception) -> typer.Exit:
    code = e.exit_code if isinstance(e, RetrainError) else 2
    typer.echo(f"error: {e}", err=True)
    return typer.Exit(code)


@retrain_app.command("trigger")
def trigger_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the decision as JSON, launch nothing")
    ] = False,
    every: Annotated[
        float | None, typer.Option("--every", help="repeat every SECONDS (a local stand-in for the CronJob)")
    ] = None,
) -> None:
    """Count labelled feedback since the watermark; launch one retraining run at the threshold."""
    from services.common.feedback import FeedbackStore
    from services.retrain.settings import TriggerSettings
    from services.retrain.trigger import build_executor, decide

    try:
        settings = TriggerSettings()
        executor = build_executor(settings)
    except (RetrainError, ValueError) as e:
        raise _fail(e) from e
    while True:
        try:
            decision = decide(
                FeedbackStore(settings.feedback_dir), settings.retrain_threshold, executor, dry_run=dry_run
            )
        except (RetrainError, ValueError) as e:
            if every is None:
                raise _fail(e) from e
            # A looping trigger outlives one bad tick (an API server hiccup), like the next CronJob run would.
            events.emit("trigger_error", error=f"{type(e).__name__}: {e}")
        else:
            if dry_run:
                typer.echo(decision.model_dump_json(indent=2))
        if every is None:
            return
        time.sleep(every)


@retrain_app.command("run")
def run_cmd(
    name: Annotated[
        str | None, typer.Option("--name", help="run name (default: derived from the feedback)")
    ] = None,
) -> None:
    """Run (or resume) one retraining run: snapshot, train, evaluate, gate, register, export, roll, watermark."""
    from services.retrain.run import build_run
    from services.retrain.settings import RunSettings

    try:
        settings = RunSettings()  # type: ignore[call-arg]  # base_data/eval_data come from the environment
        journal = build_run(settings).execute(name)
    except (RetrainError, ValueError) as e:
        raise _fail(e) from e
    typer.echo(
        journal.model_dump_json(indent=2, include={"run_name", "status", "challenger_version", "reason"})
    )


@retrain_app.command("retry")
def retry_cmd(
    name: Annotated[
        str | None, typer.Option("--name", help="run to retry (default: the newest unfinished one)")
    ] = None,
) -> None:
    """Give a failed retraining run more attempts and launch it again (it resumes where it stopped)."""
    from services.retrain.settings import TriggerSettings
    from services.retrain.trigger import build_executor, retry

    try:
        settings = TriggerSettings()
        result = retry(settings, build_executor(settings), name)
    except (RetrainError, ValueError) as e:
        raise _fail(e) from e
    typer.echo(result.model_dump_json())
    if not result.created:
        raise typer.Exit(1)


@retrain_app.command("status")
def status_cmd() -> None:
    """Print the journals of past runs (newest last) as JSON."""
    from services.retrain.journal import RunJournal
    from services.retrain.settings import CommonSettings

    settings = CommonSettings()
    journals = []
    for path in sorted(settings.journal_dir.glob("crackseg-retrain-*.json"), key=lambda p: p.stat().st_mtime):
        journal = RunJournal.model_validate_json(path.read_bytes())
        journals.append(journal.model_dump(mode="json", exclude={"plan"}))
    json.dump(journals, sys.stdout, indent=2)
    sys.stdout.write("\n")


@model_app.command("rollback")
def rollback_cmd(
    to: Annotated[
        str | None, typer.Option("--to", help="version to serve (default: the champion's parent)")
    ] = None,
) -> None:
    """Point the champion alias back at an earlier version and roll the predictor onto it."""
    from ml.registry import Registry
    from services.retrain.rollback import rollback
    from services.retrain.rollout import build_rollout
    from services.retrain.settings import RolloutSettings

    try:
        settings = RolloutSettings()
        result = rollback(settings, Registry(settings.mlflow_tracking_uri), build_rollout(settings), to)
    except (RetrainError, ValueError) as e:
        raise _fail(e) from e
    typer.echo(result.model_dump_json())


def register(app: typer.Typer) -> None:
    """Add ``retrain`` and ``model`` to the ``crackseg`` app."""
    app.add_typer(retrain_app, name="retrain")
    app.add_typer(model_app, name="model")
