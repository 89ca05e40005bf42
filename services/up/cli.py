"""``crackseg up`` / ``crackseg down``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        state_dir: Path = typer.Option(None, help="where the system keeps its state (default: state/)"),
        mlflow_port: int = typer.Option(None, help="MLflow port (default 5000)"),
        predictor_port: int = typer.Option(None, help="predictor port (default 8000)"),
        ui_port: int = typer.Option(None, help="UI port (default 8500)"),
        prometheus_port: int = typer.Option(None, help="Prometheus port (default 9090)"),
        trigger_interval: float = typer.Option(
            None, help="seconds between retrain-trigger runs (default 60)"
        ),
        retrain_threshold: int = typer.Option(
            None, help="labelled feedback that starts a retrain (default 20)"
        ),
    ) -> None:
        """Start MLflow, the predictor, the UI, the retrain trigger and Prometheus as local processes."""
        from services.up.settings import UpSettings
        from services.up.supervisor import UpError
        from services.up.system import LocalSystem

        overrides = {
            "state_dir": state_dir,
            "mlflow_port": mlflow_port,
            "predictor_port": predictor_port,
            "ui_port": ui_port,
            "prometheus_port": prometheus_port,
            "trigger_interval_s": trigger_interval,
            "retrain_threshold": retrain_threshold,
        }
        settings = UpSettings.model_validate({k: v for k, v in overrides.items() if v is not None})
        try:
            code = LocalSystem(settings, echo=typer.echo).run()
        except UpError as e:
            typer.secho(f"crackseg up: {e}", fg="red", err=True)
            raise typer.Exit(1) from e
        raise typer.Exit(code)

    @app.command()
    def down(
        state_dir: Path = typer.Option(Path("state"), help="the state folder of the running system"),
    ) -> None:
        """Stop a running ``crackseg up`` (every process it started)."""
        from services.up.supervisor import UpError
        from services.up.system import stop_running

        try:
            stop_running(state_dir, echo=typer.echo)
        except UpError as e:
            typer.secho(f"crackseg down: {e}", fg="red", err=True)
            raise typer.Exit(1) from e
