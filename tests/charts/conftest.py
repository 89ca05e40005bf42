"""Fixtures for the chart tests: every ci/*-values.yaml scenario rendered once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.charts.render import SCENARIOS, Rendered, render, scenario_values


@pytest.fixture(scope="session", params=SCENARIOS, ids=lambda p: Path(p).name.removesuffix("-values.yaml"))
def scenario(request: pytest.FixtureRequest) -> tuple[str, list[Rendered]]:
    """(scenario name, rendered objects) for each CI scenario."""
    path: Path = request.param
    return path.name, render(scenario_values(path))


@pytest.fixture(scope="session")
def default_objects() -> list[Rendered]:
    return render({})
