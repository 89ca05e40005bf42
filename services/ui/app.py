"""Entry point of the Streamlit UI (``crackseg ui``): navigation and the service status in the sidebar."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from services.ui import resources
from services.ui.client import PredictorError

HERE = Path(__file__).parent

st.set_page_config(page_title="crackseg", page_icon=":material/road:", layout="wide")

pages = st.navigation(
    [
        st.Page(HERE / "views" / "inspect.py", title="Inspect", icon=":material/search:", default=True),
        st.Page(HERE / "views" / "correct.py", title="Correct & send", icon=":material/edit:"),
        st.Page(HERE / "views" / "batch.py", title="Batch", icon=":material/photo_library:"),
        st.Page(HERE / "views" / "models.py", title="Models", icon=":material/monitoring:"),
    ]
)

with st.sidebar:
    st.caption("Predictor")
    try:
        status = resources.ping(resources.predictor(), resources.predictor().cache_key)
    except PredictorError as e:
        st.error(e.message, icon=":material/cloud_off:")
    else:
        if status.ready:
            st.success(f"Ready · model v{status.model_version or '?'}", icon=":material/check_circle:")
        else:
            st.warning("Up, but no model is loaded yet.", icon=":material/hourglass_top:")

pages.run()
