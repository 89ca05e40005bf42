"""Streamlit glue: the cached clients, bounded result caches, and the session's images.

Tests (and only tests) swap a client by putting an object with the same methods in ``st.session_state`` under
:data:`CLIENT_KEY` / :data:`REGISTRY_KEY` before the first run; everything else goes through the
``@st.cache_resource`` factories, built from :class:`~services.ui.settings.UISettings`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from services.common.severity import SURFACES, Surface
from services.ui.client import FeedbackStats, Ping, Prediction, PredictorClient
from services.ui.registry import RegistryClient, RegistryView
from services.ui.settings import get_settings

CLIENT_KEY = "crackseg.predictor_client"
REGISTRY_KEY = "crackseg.registry_client"
IMAGES_KEY = "crackseg.images"
THRESHOLD_KEY = "crackseg.threshold"
PIXEL_SIZE_KEY = "crackseg.mm_per_px"
SURFACE_KEY = "crackseg.surface"
SAMPLES_DIR = Path(__file__).parent / "samples"
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Enough for a batch of photos without letting one session hold hundreds of megabytes.
MAX_SESSION_IMAGES = 12


@dataclass(frozen=True)
class UploadedImage:
    """An image the person picked in this session (uploaded or a bundled sample)."""

    name: str
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@st.cache_resource(show_spinner=False)
def _predictor_client() -> PredictorClient:
    return PredictorClient.from_settings(get_settings())


@st.cache_resource(show_spinner=False)
def _registry_client() -> RegistryClient:
    return RegistryClient.from_settings(get_settings())


def predictor() -> PredictorClient:
    """The predictor client for this session (shared across sessions unless a test injected one)."""
    injected = st.session_state.get(CLIENT_KEY)
    return injected if injected is not None else _predictor_client()


def registry() -> RegistryClient:
    injected = st.session_state.get(REGISTRY_KEY)
    return injected if injected is not None else _registry_client()


# Exceptions are never cached by st.cache_data, so a page that failed while a server was down retries on the
# next rerun and recovers by itself once the server is back. A cached prediction carries the version that made
# it, and that is the version feedback on it is attributed to.
@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def predict(_client: PredictorClient, client_key: str, image: bytes, filename: str) -> Prediction:
    return _client.predict(image, filename, probabilities=True)


@st.cache_data(ttl=5, max_entries=8, show_spinner=False)
def ping(_client: PredictorClient, client_key: str) -> Ping:
    return _client.ping()


@st.cache_data(ttl=5, max_entries=8, show_spinner=False)
def feedback_stats(_client: PredictorClient, client_key: str) -> FeedbackStats:
    return _client.feedback_stats()


@st.cache_data(ttl=30, max_entries=4, show_spinner=False)
def registry_view(_client: RegistryClient, client_key: str) -> RegistryView:
    return _client.view()


def samples() -> dict[str, Path]:
    """The bundled sample photos by file name."""
    if not SAMPLES_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(SAMPLES_DIR.iterdir()) if p.suffix.lower() in SAMPLE_SUFFIXES}


def session_images() -> list[UploadedImage]:
    return list(st.session_state.get(IMAGES_KEY, []))


def set_session_images(images: list[UploadedImage]) -> None:
    # Same bytes twice is one image; the newest selection comes first.
    unique: dict[str, UploadedImage] = {}
    for img in images:
        unique.setdefault(img.digest, img)
    st.session_state[IMAGES_KEY] = list(unique.values())[:MAX_SESSION_IMAGES]


def remembered(widget_key: str, stored_key: str, default: object) -> None:
    """Seed a widget from a session value that outlives it (Streamlit drops a widget's state on pages that do not
    draw it). Only before the widget is drawn; the widget's key stays stable, so it keeps focus across reruns."""
    if widget_key not in st.session_state or st.session_state.pop(f"{widget_key}.reseed", False):
        st.session_state[widget_key] = st.session_state.get(stored_key, default)


def calibration_controls() -> tuple[float | None, Surface]:
    """Pixel size and surface inputs; the values live in the session, so every page uses the same calibration."""
    left, right = st.columns(2)
    remembered(f"{PIXEL_SIZE_KEY}.input", PIXEL_SIZE_KEY, 0.0)
    value = left.number_input(
        "Pixel size (mm per pixel, 0 = not calibrated)",
        min_value=0.0,
        max_value=1000.0,
        step=0.01,
        format="%.4f",
        key=f"{PIXEL_SIZE_KEY}.input",
    )
    remembered(f"{SURFACE_KEY}.input", SURFACE_KEY, "asphalt")
    surface = right.selectbox(
        "Surface (severity rule when calibrated)", list(SURFACES), key=f"{SURFACE_KEY}.input"
    )
    st.session_state[PIXEL_SIZE_KEY] = value or 0.0
    st.session_state[SURFACE_KEY] = surface
    return (float(value) or None), surface  # type: ignore[return-value]


def set_pixel_size(mm_per_px: float) -> None:
    """Set the pixel size from outside its input (the reference tool); the input shows it after the rerun."""
    st.session_state[PIXEL_SIZE_KEY] = mm_per_px
    st.session_state[f"{PIXEL_SIZE_KEY}.input.reseed"] = True
