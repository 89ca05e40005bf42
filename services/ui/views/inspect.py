"""Inspect: upload photos (or pick a sample), see the mask, the overlay and the crack statistics."""

from __future__ import annotations

from functools import partial

import streamlit as st

from services.ui import resources
from services.ui.client import PredictorError
from services.ui.feedback import statistics_rows
from services.ui.overlay import (
    decode_image,
    decode_mask,
    display_size,
    overlay,
    overlay_jpeg,
    resize_mask,
    resize_rgb,
)
from services.ui.resources import UploadedImage
from services.ui.settings import get_settings

DISPLAY_MAX = 1200
IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"]

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

opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05)
client = resources.predictor()

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
        mask = decode_mask(prediction.mask_png, shape=rgb.shape[:2])
    except ValueError as e:
        st.error(f"The predictor's mask does not fit the photo: {e}")
        continue
    # Large photos are shown scaled down; the downloads stay at full resolution.
    size = display_size(rgb.shape[1], rgb.shape[0], DISPLAY_MAX, DISPLAY_MAX)
    shown_rgb, shown_mask = resize_rgb(rgb, size), resize_mask(mask, size)

    left, middle, right = st.columns(3)
    left.image(shown_rgb, caption=f"Original · {rgb.shape[1]}×{rgb.shape[0]} px", width="stretch")
    middle.image(shown_mask, caption="Mask", width="stretch")
    right.image(
        overlay(shown_rgb, shown_mask > 0, opacity),
        caption=f"Overlay · opacity {opacity:.2f}",
        width="stretch",
    )

    columns = st.columns(6)
    for column, (label, value) in zip(columns, statistics_rows(prediction.statistics), strict=True):
        column.metric(label, value)
    st.caption(
        f"Model v{prediction.model_version or '?'} · {prediction.inference_ms:.0f} ms · "
        f"threshold {prediction.threshold:.2f}"
    )
    stem = image.name.rsplit(".", 1)[0]
    down_mask, down_overlay, correct = st.columns(3)
    down_mask.download_button(
        "Download mask (PNG)",
        prediction.mask_png,
        f"{stem}_mask.png",
        "image/png",
        key=f"dl-mask-{index}",
        on_click="ignore",
    )
    down_overlay.download_button(
        "Download overlay (JPEG)",
        partial(overlay_jpeg, rgb, mask, opacity),
        f"{stem}_overlay.jpg",
        "image/jpeg",
        key=f"dl-ov-{index}",
        on_click="ignore",
    )
    if correct.button("Correct this one", key=f"correct-{index}"):
        st.session_state["crackseg.correct_target"] = image.digest
        st.switch_page("views/correct.py")
