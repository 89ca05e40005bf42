"""What a retraining run trains on, frozen at its start, and the deterministic run name derived from it.

The name hashes the watermark and the labelled set (record id + update time). Two triggers that look at the same
store therefore pick the same name (the second create is a 409, i.e. success), while new or relabelled feedback
after a rejected run gives a new name, so a rejected set is not retrained over and over.

A run started by name follows the plan that name stands for, not whatever the store holds when it starts:
:func:`make_plan` with ``run_name`` finds the labelled set (the oldest-first prefix of today's set) that hashes
to the name, so feedback that arrived after the trigger planned waits for the next run. Each item also freezes
the label file it stood for (masks are content-addressed), so a label corrected mid-run is not trained on.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime

from pydantic import BaseModel

from services.common.feedback import FeedbackStore, Watermark
from services.retrain.errors import ConfigError

RUN_PREFIX = "crackseg-retrain-"
RUN_NAME_RE = re.compile(r"^crackseg-retrain-[0-9a-f]{12}$")


class LabelledItem(BaseModel):
    """One labelled record as the run saw it."""

    id: str
    updated_at: datetime
    label_file: str | None = None  # the label as planned (None in journals written before labels were frozen)


class RetrainPlan(BaseModel):
    """The labelled feedback a run trains on and where the watermark goes if it is promoted.

    Attributes:
        run_name: ``crackseg-retrain-<hash12>``, a valid DNS-1123 name (Job name, MLflow tag, journal file).
        watermark: The watermark when the plan was made (``None`` before the first retrain).
        target_watermark: Max ``updated_at`` of ``items``: where the watermark moves on promotion (not "now",
            so feedback arriving during the run is counted by the next one).
        items: The labelled records newer than ``watermark``, oldest first (what triggered the run).
        all_labelled: Every labelled record in the store, oldest first: what the run trains and is judged on
            (feedback from before the watermark still describes the users' photos).
        unlabelled_since_watermark: Feedback without a label (reported, never trained on).
    """

    run_name: str
    watermark: datetime | None
    target_watermark: datetime | None
    items: list[LabelledItem]
    all_labelled: list[LabelledItem] = []
    unlabelled_since_watermark: int = 0

    @property
    def labelled_count(self) -> int:
        return len(self.items)

    @property
    def training_items(self) -> list[LabelledItem]:
        """All labelled feedback (a journal written before ``all_labelled`` existed: the new items)."""
        return self.all_labelled or self.items


def run_name_for(watermark: Watermark | None, items: list[LabelledItem]) -> str:
    payload = {
        "watermark": watermark.watermark.isoformat() if watermark else None,
        "items": sorted([i.id, i.updated_at.isoformat()] for i in items),
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{RUN_PREFIX}{digest[:12]}"


def validate_run_name(name: str) -> str:
    if not RUN_NAME_RE.match(name):
        raise ValueError(f"run name {name!r} is not of the form {RUN_PREFIX}<12 hex digits>")
    return name


def make_plan(store: FeedbackStore, run_name: str | None = None) -> RetrainPlan:
    """Freeze the labelled set newer than the store's watermark; with ``run_name``, the set that name stands for.

    Raises :class:`ConfigError` when no such set exists any more (a record of the plan was relabelled or the
    watermark moved): the run must not train on something else under that name.
    """
    watermark = store.read_watermark()
    records = list(store.records())
    since = [r for r in records if watermark is None or r.updated_at > watermark.watermark]
    items = [
        LabelledItem(id=r.id, updated_at=r.updated_at, label_file=r.label_file) for r in since if r.labelled
    ]
    unlabelled = sum(not r.labelled for r in since)
    # What the run trains and is judged on: every labelled record, not only the new ones.
    all_labelled = sorted(
        (
            LabelledItem(id=r.id, updated_at=r.updated_at, label_file=r.label_file)
            for r in records
            if r.labelled
        ),
        key=lambda i: (i.updated_at, i.id),
    )
    if run_name is not None:
        validate_run_name(run_name)
        for n in range(len(items), -1, -1):
            if run_name_for(watermark, items[:n]) == run_name:
                return _plan(run_name, watermark, items[:n], all_labelled, unlabelled)
        raise ConfigError(
            f"run {run_name}: the feedback it was planned on has changed (relabelled, or the watermark moved); "
            "the next trigger plans a new run"
        )
    return _plan(run_name_for(watermark, items), watermark, items, all_labelled, unlabelled)


def _plan(
    name: str,
    watermark: Watermark | None,
    items: list[LabelledItem],
    all_labelled: list[LabelledItem],
    unlabelled: int,
) -> RetrainPlan:
    # All labelled feedback as of the plan: a record labelled after its newest item belongs to the next run.
    target = max((i.updated_at for i in items), default=None)
    all_labelled = [i for i in all_labelled if target is None or i.updated_at <= target]
    return RetrainPlan(
        run_name=name,
        watermark=watermark.watermark if watermark else None,
        target_watermark=max((i.updated_at for i in items), default=None),
        items=items,
        all_labelled=all_labelled,
        unlabelled_since_watermark=unlabelled,
    )
