"""``crackseg ui``: the streamlit command line, and a clear error for bad configuration."""

from __future__ import annotations

import sys

import pytest
import typer
from typer.testing import CliRunner

from services.ui import cli
from services.ui.settings import get_settings


def test_streamlit_argv_is_headless_without_usage_stats() -> None:
    argv = cli.streamlit_argv(8600, "127.0.0.1", 10)
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(cli.APP)]
    assert cli.APP.is_file()
    for flag in (
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        "--server.port=8600",
        "--server.address=127.0.0.1",
        "--server.maxUploadSize=10",
    ):
        assert flag in argv


def test_bad_predictor_url_is_reported_before_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    app = typer.Typer()
    cli.register(app)
    monkeypatch.delenv("CRACKSEG_PREDICTOR_URL", raising=False)
    monkeypatch.setenv("PREDICTOR_URL", "predictor:8000")
    get_settings.cache_clear()
    execs: list[list[str]] = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: execs.append(argv))
    try:
        result = CliRunner().invoke(app, ["--port", "8600"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2 and "not an http(s) URL" in result.output
    assert execs == []


def test_ui_command_execs_streamlit_with_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    app = typer.Typer()
    cli.register(app)
    for name in ("PREDICTOR_URL", "CRACKSEG_PREDICTOR_URL", "CRACKSEG_MAX_UPLOAD_MB"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    execs: list[list[str]] = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: execs.append(argv))
    try:
        result = CliRunner().invoke(app, ["--port", "8600", "--address", "127.0.0.1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert execs == [cli.streamlit_argv(8600, "127.0.0.1", 25)]
