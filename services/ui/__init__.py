"""The Streamlit UI: inspect a photo, correct the mask, send feedback, follow the models.

It talks only to the predictor's HTTP API and to the MLflow server, and never imports torch or ``ml``.
"""
