"""Models: the champion and its metrics, the version history, the feedback backlog and the last retraining."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from services.ui import resources
from services.ui.client import PredictorError
from services.ui.feedback import backlog
from services.ui.registry import RegistryError
from services.ui.settings import get_settings

CHAMPION_METRICS = ("f1_ods", "f1_at_0_5", "ois", "precision", "recall", "iou")
STATUS_COLORS = {
    "promoted": "#2e7d32",
    "candidate": "#9e9e9e",
    "challenger-rejected": "#c62828",
    "rolled-back": "#ef6c00",
    "unknown": "#bdbdbd",
}

st.title("Models")
if st.button("Refresh"):
    resources.registry_view.clear()
    resources.feedback_stats.clear()

settings = get_settings()

st.header("Feedback and retraining")
client = resources.predictor()
try:
    stats = resources.feedback_stats(client, client.cache_key)
except PredictorError as e:
    st.error(f"Feedback numbers unavailable. {e.message}", icon=":material/cloud_off:")
else:
    progress = backlog(stats, settings.retrain_threshold)
    st.progress(progress.fraction, text=progress.text)
    total, labelled, unlabelled, since = st.columns(4)
    total.metric("Feedback received", stats.total)
    labelled.metric("Labelled", stats.labelled)
    unlabelled.metric("Verdict only", stats.unlabelled)
    since.metric("Since last retraining", stats.since_watermark)
    verdicts = {
        ("no verdict" if k == "none" else k.replace("_", " ")): n for k, n in stats.by_verdict.items() if n
    }
    if verdicts:
        st.caption("By verdict: " + ", ".join(f"{k} {n}" for k, n in verdicts.items()))
    run = stats.last_retrain
    if run is None:
        st.info("No retraining has run yet.")
    else:
        when = run.finished_at.strftime("%Y-%m-%d %H:%M UTC") if run.finished_at else "unknown time"
        line = f"Last retraining **{run.run}**: {run.outcome.replace('_', ' ')} ({when})"
        if run.model_version:
            line += f", model v{run.model_version}"
        if run.reason:
            line += f". {run.reason}"
        show = {"promoted": st.success, "rejected": st.warning, "rolled_back": st.warning}.get(
            run.outcome, st.error
        )
        show(line)
        if run.metrics:
            st.caption(" · ".join(f"{k} {v:.3f}" for k, v in sorted(run.metrics.items())))

st.header("Model registry")
registry = resources.registry()
try:
    view = resources.registry_view(registry, registry.cache_key)
except RegistryError as e:
    st.error(f"Model registry unavailable. {e.message}", icon=":material/cloud_off:")
    st.stop()

if not view.exists or not view.versions:
    st.info(f"No version of the model '{view.name}' is registered yet at {registry.tracking_uri}.")
    st.stop()

champion = view.champion
if champion is None:
    st.warning("No version carries the 'champion' alias: the predictor serves whatever it was started with.")
else:
    st.subheader(f"Champion: version {champion.version}")
    shown = [(name, champion.metric(name)) for name in CHAMPION_METRICS]
    columns = st.columns(len(shown))
    for column, (name, value) in zip(columns, shown, strict=True):
        column.metric(name, "–" if value is None else f"{value:.3f}")
    row = champion.row()
    st.caption(
        f"Dataset {row['dataset_hash'] or 'unknown'} · feedback images {row['feedback_count'] or 0} · "
        + (f"fine-tuned from v{row['parent_version']}" if row["parent_version"] else "trained from scratch")
        + f" · registered {row['created'] or 'at an unknown time'}"
    )

quality = view.quality_by_version("f1_ods")
if quality:
    st.subheader("Quality by version (F1 at the best threshold, ODS)")
    bars = (
        alt.Chart(pd.DataFrame(quality))
        .mark_bar()
        .encode(
            x=alt.X("label:N", sort=None, title="version (★ champion)", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("f1_ods:Q", title="F1 (ODS)", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=list(STATUS_COLORS), range=list(STATUS_COLORS.values())),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=["label", alt.Tooltip("f1_ods:Q", format=".3f"), "status"],
        )
    )
    labels = bars.mark_text(dy=-8).encode(text=alt.Text("f1_ods:Q", format=".3f"), color=alt.value("#31333f"))
    st.altair_chart(bars + labels, width="stretch")

st.subheader("Version history")
st.dataframe(
    pd.DataFrame([v.row() for v in view.versions]),
    hide_index=True,
    column_config={
        "champion": st.column_config.CheckboxColumn("champion"),
        "f1_ods": st.column_config.NumberColumn("F1 ODS", format="%.3f"),
        "f1_at_0_5": st.column_config.NumberColumn("F1 @0.5", format="%.3f"),
        "feedback_count": st.column_config.NumberColumn("feedback"),
        "gate": st.column_config.TextColumn(
            "gate",
            help="retraining gate at the served threshold: held-back feedback and base set, this vs champion",
        ),
    },
)
