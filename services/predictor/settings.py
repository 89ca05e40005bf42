"""Predictor configuration, read from ``CRACKSEG_*`` environment variables (see docs/contracts.md)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.names import RETRAIN_THRESHOLD


class Settings(BaseSettings):
    """Everything the predictor can be told. ``model_source`` is required: there is no sensible default model."""

    model_config = SettingsConfigDict(env_prefix="CRACKSEG_", extra="ignore", protected_namespaces=())

    model_source: str = Field(
        description="model directory, or models:/crackseg@champion / models:/crackseg/N"
    )
    model_version: str | None = Field(None, description="version label reported for a directory source")
    model_cache_dir: Path = Path("state/model-cache")
    models_dir: Path = Path("state/models")
    feedback_dir: Path = Path("state/feedback")
    mlflow_tracking_uri: str = Field(
        "http://127.0.0.1:5000",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CRACKSEG_MLFLOW_TRACKING_URI"),
    )
    retrain_threshold: int = Field(RETRAIN_THRESHOLD, ge=1)
    api_token: SecretStr | None = None

    host: str = "0.0.0.0"
    http_port: int = Field(8000, ge=1, le=65535)
    # KServe's gRPC server stays off unless a port is given.
    grpc_port: int | None = Field(None, ge=1, le=65535)

    max_body_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=4)
    max_side: int = Field(12_000, ge=2)
    runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="auto: torch on a GPU, else ONNX Runtime when the model has model.onnx, else torch",
    )
    tile_size: int = Field(1024, ge=32, description="largest tile side; a multiple of 2**depth")
    tile_overlap: int | None = Field(
        None, ge=0, description="default: the model's receptive field; smaller values are refused"
    )
    tile_batch: int = Field(1, ge=1, le=64, description="tiles per forward pass")
    threads: int | None = Field(None, ge=1, description="intra-op threads; default: the CPUs usable here")
    cpu_limit: int | None = Field(
        None, ge=0, description="the container's CPU limit (downward API limits.cpu); 0 or unset: none"
    )
    max_inflight: int = Field(
        4, ge=1, description="inference requests admitted at once; more are answered 503 before decoding"
    )
    retry_after_s: int = Field(1, ge=1, description="Retry-After on a 503 when the predictor is full")

    @model_validator(mode="after")
    def _tiles_fit(self) -> Settings:
        if self.tile_overlap is not None and 2 * self.tile_overlap >= self.tile_size:
            raise ValueError(
                f"tile_overlap ({self.tile_overlap}) must be less than half of tile_size ({self.tile_size})"
            )
        return self

    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token else None


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # model_source comes from the environment
