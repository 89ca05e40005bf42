"""Correct & send: give a verdict, paint or erase the mask over the photo, send it for retraining."""

from __future__ import annotations

import streamlit as st
from PIL import Image
from streamlit_drawable_canvas import st_canvas

from services.ui import resources
from services.ui.client import PredictorError
from services.ui.feedback import VERDICT_LABELS, backlog, choose_mask
from services.ui.inspection import mask_at
from services.ui.overlay import (
    ERASE_COLOR,
    PAINT_COLOR,
    apply_canvas_edits,
    decode_image,
    display_size,
    encode_png,
    overlay,
    resize_mask,
    resize_rgb,
)
from services.ui.resources import UploadedImage
from services.ui.settings import get_settings

TARGET_KEY = "crackseg.correct_target"
RESULT_KEY = "crackseg.last_feedback"
CANVAS_MAX = 640

st.title("Correct & send")
st.caption(
    "Paint **white** where the model missed a crack, **erase** where it marked one that is not there, "
    "then send the photo with your verdict. Labelled photos are used in the next retraining."
)
settings = get_settings()
client = resources.predictor()

with st.expander("Upload another photo", expanded=not resources.session_images()), st.form("correct-upload"):
    upload = st.file_uploader(
        "Photo",
        type=["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"],
        max_upload_size=settings.max_upload_mb,
    )
    sample = st.selectbox("…or a bundled sample", ["", *resources.samples()])
    if st.form_submit_button("Use this photo"):
        picked = None
        if upload is not None:
            picked = UploadedImage(upload.name, upload.getvalue())
        elif sample:
            picked = UploadedImage(sample, resources.samples()[sample].read_bytes())
        if picked is None:
            st.warning("Choose a photo or a sample first.")
        else:
            resources.set_session_images([picked, *resources.session_images()])
            st.session_state[TARGET_KEY] = picked.digest

images = resources.session_images()
if not images:
    st.info("Pick a photo above, or analyse one on the **Inspect** page first.")
    st.stop()

digests = [img.digest for img in images]
target = st.session_state.get(TARGET_KEY)
image = st.selectbox(
    "Photo to correct",
    images,
    index=digests.index(target) if target in digests else 0,
    format_func=lambda img: img.name,
)
if image is None:
    st.stop()

try:
    rgb = decode_image(image.data)
except ValueError as e:
    st.error(f"{image.name} is not an image this UI can read: {e}")
    st.stop()
try:
    with st.spinner("Segmenting…"):
        prediction = resources.predict(client, client.cache_key, image.data, image.name)
    # The mask the person saw on Inspect: at the threshold chosen there, from the version that made it.
    threshold = float(st.session_state.get(resources.THRESHOLD_KEY, prediction.threshold))
    predicted = mask_at(prediction, rgb.shape[:2], threshold)
except PredictorError as e:
    st.error(e.message, icon=":material/cloud_off:")
    st.button("Try again")
    st.stop()
except ValueError as e:
    st.error(f"The predictor's mask does not fit the photo: {e}")
    st.stop()

tool_col, size_col = st.columns([1, 2])
tool = tool_col.segmented_control("Tool", ["Paint", "Erase"], default="Paint", required=True)
brush = size_col.slider("Brush size (screen px)", 2, 60, 12)
width, height = display_size(rgb.shape[1], rgb.shape[0], CANVAS_MAX, CANVAS_MAX)
shown_mask = resize_mask(predicted, (width, height)) > 0
background = Image.fromarray(overlay(resize_rgb(rgb, (width, height)), shown_mask, 0.5))

draw_col, preview_col = st.columns(2)
with draw_col:
    st.caption(
        f"Model v{prediction.model_version or '?'} at threshold {threshold:.2f}: predicted cracks in red. "
        "Draw on the photo."
    )
    canvas = st_canvas(
        stroke_width=brush,
        stroke_color=ERASE_COLOR if tool == "Erase" else PAINT_COLOR,
        background_image=background,
        width=width,
        height=height,
        drawing_mode="freedraw",
        return_image_data=True,
        key=f"canvas-{image.digest[:16]}",
    )
strokes = canvas.image_data
corrected = apply_canvas_edits(predicted, strokes)
with preview_col:
    changed = int((corrected != predicted).sum())
    st.caption(f"Corrected mask · {rgb.shape[1]}×{rgb.shape[0]} px · {changed} pixels changed")
    st.image(resize_mask(corrected, (width, height)), width=width)

with st.form("send-feedback"):
    verdict = st.radio(
        "Verdict",
        list(VERDICT_LABELS),
        index=None,
        format_func=VERDICT_LABELS.__getitem__,
        horizontal=True,
    )
    comment = st.text_input("Comment (optional)", max_chars=500)
    mask_upload = st.file_uploader("Or upload a corrected mask (PNG, same size as the photo)", type=["png"])
    send = st.form_submit_button("Send feedback", type="primary")

if send and verdict is None:
    st.error("Choose a verdict first.")
elif send and verdict is not None:
    try:
        choice = choose_mask(verdict, predicted, strokes, mask_upload.getvalue() if mask_upload else None)
    except ValueError as e:
        st.error(str(e))
    else:
        try:
            with st.spinner("Sending…"):
                result = client.save_for_retrain(
                    image.data,
                    image.name,
                    mask_png=encode_png(choice.mask) if choice.mask is not None else None,
                    verdict=verdict,
                    comment=comment or None,
                    predicted_png=encode_png(predicted) if prediction.model_version else None,
                    model_version=prediction.model_version or None,
                )
        except PredictorError as e:
            st.error(e.message, icon=":material/cloud_off:")
        else:
            resources.feedback_stats.clear()
            st.session_state[RESULT_KEY] = {
                "result": result,
                "note": choice.note,
                "name": image.name,
                "digest": image.digest,
            }

last = st.session_state.get(RESULT_KEY)
# The confirmation belongs to the photo it was sent for; another photo shows the live backlog instead.
if last is not None and last["digest"] == image.digest:
    result = last["result"]
    st.success(f"Stored {last['name']} as `{result.id}`", icon=":material/check_circle:")
    st.caption(
        last["note"]
        + (
            " The same photo was sent before: this label replaces the earlier one."
            if result.deduplicated
            else ""
        )
        + (" It counts as a training label." if result.labelled else " It is not a training label.")
    )
    progress = backlog(result.stats, settings.retrain_threshold)
    st.progress(progress.fraction, text=progress.text)
else:
    try:
        stats = resources.feedback_stats(client, client.cache_key)
    except PredictorError as e:
        st.caption(f"Feedback backlog unavailable: {e.message}")
    else:
        progress = backlog(stats, settings.retrain_threshold)
        st.progress(progress.fraction, text=progress.text)
