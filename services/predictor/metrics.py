"""Domain metrics the HTTP instrumentation cannot know. Registered once per process on the default registry.

KServe's own request histograms (``request_predict_seconds`` …) live on the same registry, as do the HTTP
metrics of prometheus-fastapi-instrumentator, so one ``/metrics`` scrape shows all three.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.feedback import FeedbackStore

MODEL_INFO = Gauge("crackseg_model_info", "The model version being served (value 1).", ["version"])
MODEL_LOADED = Gauge("crackseg_model_loaded", "1 once a model is loaded and warmed up, else 0.")
INFERENCE_SECONDS = Histogram(
    "crackseg_inference_seconds",
    "Time spent in the network per image (decode and encode excluded).",
    ["model_version"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
CRACK_RATIO = Histogram(
    "crackseg_predicted_crack_ratio",
    "Fraction of pixels predicted as crack, per image.",
    buckets=(0.0, 0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 1.0),
)
FEEDBACK_RECEIVED = Counter(
    "crackseg_feedback_received", "Feedback submissions accepted, by verdict.", ["verdict"]
)
REJECTED_INPUTS = Counter("crackseg_rejected_inputs", "Requests rejected with a 4xx, by reason.", ["reason"])
REQUESTS_IN_FLIGHT = Gauge(
    "crackseg_inference_requests_in_flight", "Inference requests admitted and not yet answered."
)
REQUESTS_SHED = Counter(
    "crackseg_inference_requests_shed", "Inference requests answered 503 because the predictor was full."
)
LABELLED_SINCE_WATERMARK = Gauge(
    "crackseg_feedback_labelled_since_watermark", "Labelled feedback records since the last retrain."
)
RETRAIN_THRESHOLD = Gauge("crackseg_retrain_threshold", "Labelled records that trigger a retrain.")
RETRAIN_RUNS = Gauge(
    "crackseg_retrain_runs", "Retraining runs in the store's history, by outcome.", ["outcome"]
)
LAST_RETRAIN = Gauge(
    "crackseg_last_retrain_timestamp_seconds", "Finish time of the last retraining run (0: never)."
)
_OUTCOMES = ("promoted", "rejected", "failed", "rolled_back")


def set_model_version(version: str) -> None:
    MODEL_INFO.clear()
    MODEL_INFO.labels(version=version).set(1)
    MODEL_LOADED.set(1)


def refresh_feedback_gauges(store: FeedbackStore, threshold: int) -> None:
    """Recompute the feedback gauges from the store (called at scrape time: the store is the truth)."""
    stats = store.stats(threshold)
    LABELLED_SINCE_WATERMARK.set(stats.labelled_since_watermark)
    RETRAIN_THRESHOLD.set(threshold)
    counts = dict.fromkeys(_OUTCOMES, 0)
    for run in store.retrain_runs():
        counts[run.outcome] = counts.get(run.outcome, 0) + 1
    for outcome, n in counts.items():
        RETRAIN_RUNS.labels(outcome=outcome).set(n)
    LAST_RETRAIN.set(stats.last_retrain.finished_at.timestamp() if stats.last_retrain else 0)
