"""Severity rules by surface, as a small table: a crack's class from its width, a photo's from its worst crack.

The rules ship in ``severity.yaml`` beside this module (asphalt in the style of ASTM D6433, concrete in the style
of ACI 224R, both in millimetres; an uncalibrated pixel rule for photos without a pixel size). A deployment can
replace the table with ``CRACKSEG_SEVERITY_RULES=/path/rules.yaml`` of the same shape.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Severity = Literal["none", "low", "medium", "high"]
SEVERITIES: tuple[str, ...] = ("none", "low", "medium", "high")
Surface = Literal["asphalt", "concrete"]
SURFACES: tuple[str, ...] = ("asphalt", "concrete")
DEFAULT_RULES = Path(__file__).with_name("severity.yaml")
RULES_ENV = "CRACKSEG_SEVERITY_RULES"


class SeverityRule(BaseModel):
    """Widths below ``medium_from`` are low, above ``high_above`` high, the rest medium (in ``unit``)."""

    model_config = ConfigDict(extra="forbid")
    unit: Literal["mm", "px"]
    width: Literal["mean", "max"]
    medium_from: float = Field(gt=0)
    high_above: float = Field(gt=0)
    reference: str

    @model_validator(mode="after")
    def _ordered(self) -> SeverityRule:
        if self.high_above < self.medium_from:
            raise ValueError(f"high_above ({self.high_above}) must be >= medium_from ({self.medium_from})")
        return self

    def classify(self, mean_width: float, max_width: float) -> Severity:
        value = mean_width if self.width == "mean" else max_width
        if value > self.high_above:
            return "high"
        if value >= self.medium_from:
            return "medium"
        return "low"


class SeverityTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asphalt: SeverityRule
    concrete: SeverityRule
    pixels: SeverityRule

    @model_validator(mode="after")
    def _units(self) -> SeverityTable:
        if self.asphalt.unit != "mm" or self.concrete.unit != "mm" or self.pixels.unit != "px":
            raise ValueError("asphalt and concrete rules are in mm, the pixels rule in px")
        return self

    def rule(self, surface: Surface, calibrated: bool) -> SeverityRule:
        """The rule that applies: the surface's in mm when a pixel size is known, else the pixel rule."""
        if not calibrated:
            return self.pixels
        if surface not in SURFACES:
            raise ValueError(f"unknown surface {surface!r}; valid: {', '.join(SURFACES)}")
        return self.asphalt if surface == "asphalt" else self.concrete


def worst(severities: list[Severity]) -> Severity:
    """The highest class in ``severities``; ``none`` when empty."""
    return max(severities, key=SEVERITIES.index, default="none")


def load_table(path: str | Path | None = None) -> SeverityTable:
    """The table at ``path``, else ``$CRACKSEG_SEVERITY_RULES``, else the shipped one (cached per path).

    Raises:
        ValueError: the file is missing or does not have the table's shape; the message names the file.
    """
    chosen = Path(path or os.environ.get(RULES_ENV) or DEFAULT_RULES).expanduser().resolve()
    return _load(chosen)


@lru_cache(maxsize=8)
def _load(path: Path) -> SeverityTable:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ValueError(f"cannot read the severity rules {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ValueError(f"the severity rules {path} are not valid YAML: {e}") from e
    try:
        return SeverityTable.model_validate(raw)
    except ValidationError as e:
        raise ValueError(f"the severity rules {path} are invalid: {e}") from e
