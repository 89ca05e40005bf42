"""Fixtures for the UI suites: AppTest runs of the real app with the clients swapped at their boundary."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from services.ui import resources
from tests.helpers.procs import REPO
from tests.services.ui.fakes import FakePredictor, FakeRegistry

APP = REPO / "services" / "ui" / "app.py"


@pytest.fixture
def predictor() -> FakePredictor:
    return FakePredictor()


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def make_app(predictor: FakePredictor, registry: FakeRegistry) -> Callable[[str | None], AppTest]:
    """An AppTest of the whole app (navigation included), opened on ``page`` (``None``: the default page).

    Each AppTest has its own Streamlit runtime, so its caches start empty: no test sees another's results.
    """

    def make(page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=30)
        at.session_state[resources.CLIENT_KEY] = predictor
        at.session_state[resources.REGISTRY_KEY] = registry
        at.run()
        if page is not None:
            at.switch_page(page).run()
        return at

    return make
