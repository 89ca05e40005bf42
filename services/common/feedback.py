"""The feedback store: content-addressed images, masks and one JSON record per image.

Shared by the predictor (writes feedback), the retrain trigger (counts it) and the retraining run (trains on it,
advances the watermark). It never imports torch. Layout under the feedback root::

    images/<sha256>.<ext>     the uploaded bytes, exactly as received (sha256 of those bytes)
    masks/<sha256>.png        the corrected mask, 0/255, same size as the (EXIF-rotated) image
    predicted/<sha256>.png    the mask the model predicted for it
    records/<sha256>.json     metadata (FeedbackRecord); written last, so a record always points at whole files
    state/watermark.json      the last successful retrain: time, run name, model version
    state/retrain_runs.json   outcomes of retraining runs, newest last

Every file is written atomically (temp file + fsync + rename): a reader never sees a partial file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from ml.fsutil import atomic_write_bytes, atomic_write_json

Verdict = Literal["correct", "missed_cracks", "false_cracks", "other"]
VERDICTS: tuple[str, ...] = ("correct", "missed_cracks", "false_cracks", "other")
MAX_RUN_HISTORY = 200


def utcnow() -> datetime:
    return datetime.now(UTC)


class LabelHistoryEntry(BaseModel):
    updated_at: datetime
    verdict: Verdict | None = None
    has_mask: bool = False
    comment: str | None = None
    model_version: str | None = None


class FeedbackRecord(BaseModel):
    id: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime
    updated_at: datetime
    verdict: Verdict | None = None
    comment: str | None = None
    model_version: str | None = None
    width: int
    height: int
    image_file: str
    has_mask: bool = False
    mask_file: str | None = None
    predicted_mask_file: str | None = None
    history: list[LabelHistoryEntry] = Field(default_factory=list)

    @property
    def labelled(self) -> bool:
        """A corrected mask, or a ``correct`` verdict on a stored prediction, makes a training label."""
        return self.has_mask or (self.verdict == "correct" and self.predicted_mask_file is not None)

    @property
    def label_file(self) -> str | None:
        if self.has_mask:
            return self.mask_file
        if self.verdict == "correct":
            return self.predicted_mask_file
        return None


class Watermark(BaseModel):
    watermark: datetime
    run: str | None = None
    model_version: str | None = None


class RetrainOutcome(BaseModel):
    run: str
    outcome: Literal["promoted", "rejected", "failed", "rolled_back"]
    started_at: datetime | None = None
    finished_at: datetime = Field(default_factory=utcnow)
    model_version: str | None = None
    reason: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class FeedbackStats(BaseModel):
    total: int
    labelled: int
    unlabelled: int
    since_watermark: int
    labelled_since_watermark: int
    by_verdict: dict[str, int]
    watermark: datetime | None
    threshold: int | None = None
    last_retrain: RetrainOutcome | None = None


class FeedbackStore:
    """Reads and writes the feedback directory. Safe across threads and processes (an flock guards updates)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- paths ---------------------------------------------------------------------------------------------
    def _record_path(self, record_id: str) -> Path:
        return self.root / "records" / f"{record_id}.json"

    def path(self, relative: str) -> Path:
        """Absolute path of a file named in a record (``images/…``, ``masks/…``)."""
        resolved = (self.root / relative).resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise ValueError(f"{relative!r} points outside the feedback directory")
        return resolved

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        (self.root / "state").mkdir(parents=True, exist_ok=True)
        with open(self.root / "state" / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- writes --------------------------------------------------------------------------------------------
    def save(
        self,
        image_bytes: bytes,
        image_ext: str,
        width: int,
        height: int,
        *,
        mask_png: bytes | None = None,
        predicted_png: bytes | None = None,
        verdict: str | None = None,
        comment: str | None = None,
        model_version: str | None = None,
        now: datetime | None = None,
    ) -> tuple[FeedbackRecord, bool]:
        """Store one piece of feedback; returns the record and whether the image was already known.

        Identical images (same bytes) share one record: the newer label wins and the older one moves to
        ``history``. The inputs must already be validated (the predictor does that); this only stores.
        """
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}; valid: {', '.join(VERDICTS)}")
        if not image_ext.isalnum() or len(image_ext) > 5:
            raise ValueError(f"bad image extension {image_ext!r}")
        now = now or utcnow()
        record_id = hashlib.sha256(image_bytes).hexdigest()
        image_file = f"images/{record_id}.{image_ext.lower()}"
        with self._locked():
            previous = self.get(record_id)
            if not self.path(image_file).exists():
                atomic_write_bytes(self.path(image_file), image_bytes)
            mask_file = None
            if mask_png is not None:
                mask_file = f"masks/{record_id}.png"
                atomic_write_bytes(self.path(mask_file), mask_png)
            predicted_file = previous.predicted_mask_file if previous else None
            if predicted_png is not None:
                predicted_file = f"predicted/{record_id}.png"
                atomic_write_bytes(self.path(predicted_file), predicted_png)
            history = list(previous.history) if previous else []
            if previous is not None:
                history.append(
                    LabelHistoryEntry(
                        updated_at=previous.updated_at,
                        verdict=previous.verdict,
                        has_mask=previous.has_mask,
                        comment=previous.comment,
                        model_version=previous.model_version,
                    )
                )
            record = FeedbackRecord(
                id=record_id,
                created_at=previous.created_at if previous else now,
                updated_at=now,
                verdict=verdict,  # type: ignore[arg-type]
                comment=comment,
                model_version=model_version,
                width=width,
                height=height,
                image_file=image_file,
                has_mask=mask_file is not None,
                mask_file=mask_file,
                predicted_mask_file=predicted_file,
                history=history,
            )
            atomic_write_json(self._record_path(record_id), record.model_dump(mode="json"))
        return record, previous is not None

    def write_watermark(self, watermark: Watermark) -> None:
        with self._locked():
            atomic_write_json(self.root / "state" / "watermark.json", watermark.model_dump(mode="json"))

    def record_retrain(self, outcome: RetrainOutcome) -> None:
        with self._locked():
            runs = self.retrain_runs()
            runs.append(outcome)
            atomic_write_json(
                self.root / "state" / "retrain_runs.json",
                [r.model_dump(mode="json") for r in runs[-MAX_RUN_HISTORY:]],
            )

    # -- reads ---------------------------------------------------------------------------------------------
    def get(self, record_id: str) -> FeedbackRecord | None:
        path = self._record_path(record_id)
        try:
            return FeedbackRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None

    def records(self) -> Iterator[FeedbackRecord]:
        """All readable records, oldest update first. Unreadable records are skipped, never fatal."""
        folder = self.root / "records"
        if not folder.is_dir():
            return iter(())
        found = []
        for path in folder.glob("*.json"):
            try:
                found.append(FeedbackRecord.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError, json.JSONDecodeError):
                continue
        return iter(sorted(found, key=lambda r: (r.updated_at, r.id)))

    def read_watermark(self) -> Watermark | None:
        path = self.root / "state" / "watermark.json"
        try:
            return Watermark.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None

    def retrain_runs(self) -> list[RetrainOutcome]:
        path = self.root / "state" / "retrain_runs.json"
        try:
            return [RetrainOutcome.model_validate(r) for r in json.loads(path.read_bytes())]
        except FileNotFoundError:
            return []

    def labelled_since(self, watermark: Watermark | None = None) -> list[FeedbackRecord]:
        """Labelled records updated after the watermark (all labelled ones when there is none)."""
        return [
            r
            for r in self.records()
            if r.labelled and (watermark is None or r.updated_at > watermark.watermark)
        ]

    def stats(self, threshold: int | None = None) -> FeedbackStats:
        watermark = self.read_watermark()
        records = list(self.records())
        since = [r for r in records if watermark is None or r.updated_at > watermark.watermark]
        by_verdict: dict[str, int] = {v: 0 for v in (*VERDICTS, "none")}
        for r in records:
            by_verdict[r.verdict or "none"] += 1
        runs = self.retrain_runs()
        labelled = sum(r.labelled for r in records)
        return FeedbackStats(
            total=len(records),
            labelled=labelled,
            unlabelled=len(records) - labelled,
            since_watermark=len(since),
            labelled_since_watermark=sum(r.labelled for r in since),
            by_verdict=by_verdict,
            watermark=watermark.watermark if watermark else None,
            threshold=threshold,
            last_retrain=runs[-1] if runs else None,
        )
