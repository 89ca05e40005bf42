"""Inspect: upload photos (or pick a sample), see the mask, the overlay with crack ids, the measurements, the
per-crack table and the width histogram; the threshold slider re-thresholds without a new inference."""

from __future__ import annotations

from functools import partial

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from services.common import annotate
from services.ui import resources
from services.ui.client import PredictorError
from services.ui.inspection import (
    crack_table,
    line_length,
    pixel_size,
    statistics_rows,
    view_at,
    width_histogram,
)
from services.ui.overlay import decode_image, display_size, encode_png, resize_mask, resize_rgb
from services.ui.registry import RegistryError
from services.ui.resources import UploadedImage
from services.ui.settings import get_settings

DISPLAY_MAX = 1200
REFERENCE_MAX = 720
IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"]
HEADLINE_METRICS = ("f1_ods", "precision", "recall")

st.title("Inspect a photo")
st.caption("See what the model found. If it is wrong, fix it on the **Correct & send** page.")

with st.form("inspect-upload", clear_on_submit=False):
    uploads = st.file_uploader(
        "Photos of a road or concrete surface",
        type=IMAGE_TYPES,
        accept_multiple_files=True,
        max_upload_size=get_settings().max_upload_mb,
    )
    sample_names = st.multiselect("…or bundled samples", list(resources.samples()))
    submitted = st.form_submit_button("Analyse", type="primary")

if submitted:
    chosen = [UploadedImage(f.name, f.getvalue()) for f in uploads or []]
    samples = resources.samples()
    chosen += [UploadedImage(name, samples[name].read_bytes()) for name in sample_names]
    if chosen:
        resources.set_session_images(chosen)
    else:
        st.warning("Choose at least one photo or sample.")

images = resources.session_images()
if not images:
    st.info("Upload a photo or pick a sample, then press **Analyse**.")
    st.stop()


def model_threshold(image: UploadedImage) -> float:
    """The slider starts at the model's own threshold (from the cached prediction; 0.5 when there is none)."""
    client = resources.predictor()
    try:
        decode_image(image.data)  # an unreadable file is reported below and never sent
        return resources.predict(client, client.cache_key, image.data, image.name).threshold
    except (ValueError, PredictorError):
        return 0.5


client = resources.predictor()
threshold_col, opacity_col = st.columns(2)
resources.remembered(f"{resources.THRESHOLD_KEY}.input", resources.THRESHOLD_KEY, model_threshold(images[0]))
threshold = threshold_col.slider(
    "Threshold (crack probability)",
    0.05,
    0.95,
    step=0.01,
    key=f"{resources.THRESHOLD_KEY}.input",
    help="Re-thresholds the probability map here, without a new inference.",
)
st.session_state[resources.THRESHOLD_KEY] = threshold
opacity = opacity_col.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05)
mm_per_px, surface = resources.calibration_controls()


def overlay_jpeg(
    rgb: np.ndarray, mask: np.ndarray, boxes: list[tuple[int, list[int]]], opacity: float
) -> bytes:
    """The full-resolution overlay with crack ids (built only when the download is clicked)."""
    return annotate.jpeg(annotate.annotated(rgb, mask, boxes, opacity))


def headline(version: str | None) -> str:
    """The served version's headline metrics from the registry, or why there are none."""
    registry = resources.registry()
    try:
        view = resources.registry_view(registry, registry.cache_key)
    except RegistryError as e:
        return f"metrics unavailable ({e.message})"
    found = next((v for v in view.versions if str(v.version) == str(version)), None)
    if found is None:
        return "not a registered version: no metrics"
    numbers = [(name, found.metric(name)) for name in HEADLINE_METRICS]
    return " · ".join(f"{name} {value:.3f}" for name, value in numbers if value is not None) or "no metrics"


def reference_tool(image: UploadedImage, rgb_width: int, rgb_height: int) -> None:
    """Draw a line over something of known length; its length in pixels gives the pixel size."""
    width, height = display_size(rgb_width, rgb_height, REFERENCE_MAX, REFERENCE_MAX)
    # A toggle, not an expander: the canvas exists only while it is used (a collapsed expander still runs it).
    if not st.toggle("Pixel size from a reference of known length", key="reference-on"):
        return
    with st.container(border=True):
        st.caption(
            f"On {image.name}: draw a line along an object whose length you know, then enter its length."
        )
        rgb = decode_image(image.data)
        canvas = st_canvas(
            stroke_width=2,
            stroke_color="#ffd400",
            background_image=Image.fromarray(resize_rgb(rgb, (width, height))),
            width=width,
            height=height,
            drawing_mode="line",
            key=f"reference-{image.digest[:16]}",
        )
        drawn = line_length(canvas.json_data, width / rgb_width)
        known = st.number_input(
            "Its real length (mm)", min_value=0.0, value=0.0, step=1.0, key="reference-mm"
        )
        st.caption(f"Line: {drawn:.1f} px" if drawn else "No line drawn yet.")
        if st.button("Use this pixel size", key="reference-apply"):
            try:
                value = pixel_size(drawn or 0.0, known)
            except ValueError as e:
                st.error(str(e))
            else:
                resources.set_pixel_size(value)
                st.rerun()


for index, image in enumerate(images):
    st.divider()
    st.subheader(image.name)
    try:
        rgb = decode_image(image.data)
    except ValueError as e:
        st.error(f"{image.name} is not an image this UI can read: {e}")
        continue
    with st.spinner("Segmenting…"):
        try:
            prediction = resources.predict(client, client.cache_key, image.data, image.name)
        except PredictorError as e:
            st.error(e.message, icon=":material/cloud_off:")
            st.button("Try again", key=f"retry-{index}")
            continue
    try:
        view = view_at(prediction, rgb.shape[:2], threshold, mm_per_px, surface)
    except ValueError as e:
        st.error(f"The predictor's mask does not fit the photo: {e}")
        continue
    if index == 0:
        reference_tool(image, rgb.shape[1], rgb.shape[0])
    # Large photos are shown scaled down; the downloads stay at full resolution.
    size = display_size(rgb.shape[1], rgb.shape[0], DISPLAY_MAX, DISPLAY_MAX)
    shown_rgb, shown_mask = resize_rgb(rgb, size), resize_mask(view.mask, size)
    boxes = [(c.id, c.bbox) for c in view.statistics.cracks]

    left, middle, right = st.columns(3)
    left.image(shown_rgb, caption=f"Original · {rgb.shape[1]}×{rgb.shape[0]} px", width="stretch")
    middle.image(shown_mask, caption=f"Mask · threshold {threshold:.2f}", width="stretch")
    right.image(
        annotate.annotated(shown_rgb, shown_mask > 0, boxes, opacity, scale=size[0] / rgb.shape[1]),
        caption=f"Overlay · opacity {opacity:.2f}",
        width="stretch",
    )

    columns = st.columns(6)
    for column, (label, value) in zip(columns, statistics_rows(view.statistics), strict=True):
        column.metric(label, value)
    st.caption(
        f"Model v{prediction.model_version or '?'} ({headline(prediction.model_version)}) · "
        f"{prediction.inference_ms:.0f} ms · model threshold {prediction.threshold:.2f} · "
        f"{view.statistics.severity_rule}"
    )
    table = crack_table(view.statistics)
    if table:
        table_col, hist_col = st.columns(2)
        table_col.dataframe(pd.DataFrame(table), hide_index=True, key=f"cracks-{index}")
        bins = pd.DataFrame(width_histogram(view.widths_px, mm_per_px))
        hist_col.altair_chart(
            alt.Chart(bins)
            .mark_bar()
            .encode(
                x=alt.X("width:N", sort=None, title="crack width"),
                y=alt.Y("skeleton_px:Q", title="length (skeleton px)"),
                tooltip=["width", "skeleton_px"],
            ),
            width="stretch",
        )
    stem = image.name.rsplit(".", 1)[0]
    down_mask, down_overlay, correct = st.columns(3)
    down_mask.download_button(
        "Download mask (PNG)",
        partial(encode_png, view.mask),
        f"{stem}_mask.png",
        "image/png",
        key=f"dl-mask-{index}",
        on_click="ignore",
    )
    down_overlay.download_button(
        "Download overlay (JPEG)",
        partial(overlay_jpeg, rgb, view.mask, boxes, opacity),
        f"{stem}_overlay.jpg",
        "image/jpeg",
        key=f"dl-ov-{index}",
        on_click="ignore",
    )
    if correct.button("Correct this one", key=f"correct-{index}"):
        st.session_state["crackseg.correct_target"] = image.digest
        st.switch_page("views/correct.py")
