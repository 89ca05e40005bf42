"""A small model registry: ``create_model(name, **cfg)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ml.models.attention_unet import AttentionUNet

MODELS: dict[str, Callable[..., nn.Module]] = {
    "attention_unet": AttentionUNet,
}


def create_model(name: str, **cfg: Any) -> nn.Module:
    """Build a registered architecture by name.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones) or a bad option.
    """
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}") from None
    try:
        return factory(**cfg)
    except TypeError as e:
        raise ValueError(f"bad options for model {name!r}: {e}") from e
