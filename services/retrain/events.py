"""Structured events: one JSON object per line on stderr, so log pipelines (and people) can read decisions."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any


def emit(event: str, **fields: Any) -> None:
    """Write ``{"ts", "component": "retrain", "event", ...fields}`` as one line to stderr."""
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "component": "retrain",
        "event": event,
    }
    record.update(fields)
    print(json.dumps(record, default=str, sort_keys=False), file=sys.stderr, flush=True)
