"""``crackseg ui``: start the Streamlit UI. Streamlit is not imported here (the CLI must stay light)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

APP = Path(__file__).with_name("app.py")


def streamlit_argv(port: int, address: str, max_upload_mb: int = 25) -> list[str]:
    """The ``streamlit run`` command line for the UI."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        f"--server.port={port}",
        f"--server.address={address}",
        # No file watcher: a server never reloads its code, and watching costs CPU.
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        f"--server.maxUploadSize={max_upload_mb}",
        "--client.toolbarMode=minimal",
        "--client.showErrorDetails=none",
        "--theme.base=light",
    ]


def register(app: typer.Typer) -> None:
    """Add ``crackseg ui`` to the ``crackseg`` app."""

    @app.command("ui")
    def ui(
        port: int = typer.Option(8500, min=1, max=65535, help="Port to listen on."),
        address: str = typer.Option(
            "0.0.0.0", envvar="CRACKSEG_UI_ADDRESS", help="Address to bind (0.0.0.0 in a container)."
        ),
    ) -> None:
        """Start the Streamlit UI (inspect, correct & send, models)."""
        from services.ui.settings import get_settings

        try:
            settings = get_settings()
        except ValueError as e:
            raise typer.BadParameter(f"invalid UI configuration: {e}") from e
        argv = streamlit_argv(port, address, settings.max_upload_mb)
        sys.stdout.flush()
        # exec, so the process a supervisor (or a test) started is Streamlit itself and gets its signals.
        os.execv(argv[0], argv)
