"""Batch: many photos (or a ZIP) through the predictor, with progress; download the masks ZIP, the CSVs and the
HTML report, the same outputs as ``crackseg predict``."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import streamlit as st

from services.batch.report import report_row
from services.common.severity import SEVERITIES
from services.ui import resources
from services.ui.batchjob import BatchOutput, expand, run_one
from services.ui.client import PredictorUnavailable
from services.ui.settings import get_settings

OUTPUT_KEY = "crackseg.batch"

st.title("Batch")
st.caption(
    "Upload many photos, or ZIP files of photos: each goes through the predictor and is measured with the pixel "
    "size and surface below. For hundreds of photos on disk, `crackseg predict` does the same from a terminal."
)
mm_per_px, surface = resources.calibration_controls()
client = resources.predictor()

with st.form("batch-upload"):
    uploads = st.file_uploader(
        "Photos or ZIP files",
        type=["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "zip"],
        accept_multiple_files=True,
        max_upload_size=get_settings().max_upload_mb,
    )
    run = st.form_submit_button("Run", type="primary")

if run:
    try:
        photos, failed = expand([(f.name, f.getvalue()) for f in uploads or []])
    except ValueError as e:
        st.error(str(e))
        st.stop()
    if not photos and not failed:
        st.warning("Choose at least one photo or ZIP file.")
        st.stop()
    output = BatchOutput(results=list(failed))
    bar = st.progress(0.0, text=f"0 / {len(photos)} photos")
    for i, (name, data) in enumerate(photos, start=1):
        try:
            run_one(client, name, data, mm_per_px, surface, output)
        except PredictorUnavailable as e:
            output.stopped = f"Stopped after {i - 1} of {len(photos)} photos: {e.message}"
            break
        bar.progress(i / len(photos), text=f"{i} / {len(photos)} photos · {name}")
    st.session_state[OUTPUT_KEY] = output

shown: BatchOutput | None = st.session_state.get(OUTPUT_KEY)
if shown is None:
    st.info("Upload photos or a ZIP, then press **Run**.")
    st.stop()
output = shown
if output.stopped:
    st.error(output.stopped, icon=":material/cloud_off:")
failed_count = len(output.results) - output.ok
(st.success if failed_count == 0 else st.warning)(
    f"{len(output.results)} photos: {output.ok} measured, {failed_count} failed."
)
counts: Counter[str] = Counter(r.statistics.severity for r in output.results if r.statistics is not None)
for column, severity in zip(st.columns(len(SEVERITIES)), reversed(SEVERITIES), strict=True):
    column.metric(f"Severity {severity}", counts.get(severity, 0))
rows = [{k: (None if v == "" else v) for k, v in report_row(r).items()} for r in output.results]
st.dataframe(pd.DataFrame(rows), hide_index=True, key="batch-report")

engine = f"predictor {client.base_url} (Batch page)"
zip_col, report_col, cracks_col, html_col = st.columns(4)
zip_col.download_button(
    "Masks and overlays (ZIP)", lambda: output.zip(engine), "crackseg-batch.zip", "application/zip",
    on_click="ignore", key="dl-zip",
)  # fmt: skip
report_col.download_button(
    "report.csv", output.report_csv(), "report.csv", "text/csv", on_click="ignore", key="dl-report"
)
cracks_col.download_button(
    "cracks.csv", output.cracks_csv(), "cracks.csv", "text/csv", on_click="ignore", key="dl-cracks"
)
html_col.download_button(
    "report.html",
    lambda: output.report_html(engine),
    "report.html",
    "text/html",
    on_click="ignore",
    key="dl-html",
)
