"""UI configuration, read from the environment through pydantic-settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.names import MODEL_NAME, RETRAIN_THRESHOLD


class UISettings(BaseSettings):
    """Where the predictor and MLflow live, how long to wait for them and how often to retry.

    ``PREDICTOR_URL`` (the original system's name) and ``CRACKSEG_PREDICTOR_URL`` are both accepted.
    """

    model_config = SettingsConfigDict(env_prefix="CRACKSEG_", extra="ignore", populate_by_name=True)

    predictor_url: str = Field(
        "http://127.0.0.1:8000",
        validation_alias=AliasChoices("CRACKSEG_PREDICTOR_URL", "PREDICTOR_URL", "predictor_url"),
    )
    mlflow_tracking_uri: str = Field(
        "http://127.0.0.1:5000",
        validation_alias=AliasChoices(
            "MLFLOW_TRACKING_URI", "CRACKSEG_MLFLOW_TRACKING_URI", "mlflow_tracking_uri"
        ),
    )
    mlflow_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_TOKEN", "mlflow_token")
    )
    api_token: SecretStr | None = None
    registered_model: str = MODEL_NAME
    retrain_threshold: int = Field(RETRAIN_THRESHOLD, ge=1)
    # Seconds. Inference on a large photo can take several seconds on a CPU, so predict gets its own limit.
    connect_timeout: float = Field(3.0, gt=0)
    read_timeout: float = Field(10.0, gt=0)
    predict_timeout: float = Field(60.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    backoff: float = Field(0.5, ge=0)
    max_upload_mb: int = Field(25, ge=1)

    @field_validator("predictor_url", "mlflow_tracking_uri")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL (e.g. http://127.0.0.1:8000)")
        return value


@lru_cache(maxsize=1)
def get_settings() -> UISettings:
    """The process-wide settings, read once from the environment."""
    return UISettings()
