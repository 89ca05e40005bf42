"""Settings of ``crackseg up`` (environment prefix ``CRACKSEG_UP_``; flags override them)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.names import RETRAIN_THRESHOLD


class UpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRACKSEG_UP_")

    state_dir: Path = Field(Path("state"), description="everything the running system writes (gitignored)")
    host: str = "127.0.0.1"
    mlflow_port: int = 5000
    predictor_port: int = 8000
    ui_port: int = 8500
    prometheus_port: int = 9090
    trigger_interval_s: float = Field(60.0, gt=0, description="how often the retrain trigger runs")
    retrain_threshold: int = Field(
        RETRAIN_THRESHOLD, ge=1, description="labelled feedback that starts a retraining run"
    )
    # The model registered as version 1 (alias champion) on a fresh registry; models/starter is the licence-clean one.
    initial_model: Path = Path("models/default")
    prometheus_config: Path = Path("monitoring/prometheus.yml")
    base_data: Path | None = Field(
        None, description="base training dataset for retraining (default: synthetic)"
    )
    eval_data: Path | None = Field(
        None, description="fixed evaluation set for the promotion gate (default: synthetic)"
    )
    retrain_params: Path = Field(
        Path(__file__).with_name("retrain-params.yaml"), description="params file with the retraining budget"
    )
    synthetic_base_images: int = Field(48, ge=4)
    synthetic_eval_images: int = Field(24, ge=2)

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"


@lru_cache
def get_settings() -> UpSettings:
    return UpSettings()
