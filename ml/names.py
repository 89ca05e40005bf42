"""Names and defaults of the interfaces between components (docs/contracts.md), defined once.

Imports nothing, so every component may use it: the UI's import-linter contract allows this one module of ``ml``.
"""

from __future__ import annotations

MODEL_NAME = "crackseg"  # the registered model in MLflow
CHAMPION_ALIAS = "champion"  # the alias of the version that serves
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}"
RETRAIN_THRESHOLD = 20  # labelled feedback since the watermark that starts a retraining run (default)
