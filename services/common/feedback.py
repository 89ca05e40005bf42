"""The feedback store: content-addressed images, masks and one JSON record per image.

Shared by the predictor (writes feedback), the retrain trigger (counts it) and the retraining run (trains on it,
advances the watermark). It never imports torch. Layout under the feedback root::

    images/<sha256>.<ext>     the uploaded bytes, exactly as received (sha256 of those bytes)
    masks/<sha256>-<mask sha256[:16]>.png        the corrected mask, 0/255, same size as the (EXIF-rotated) image
    predicted/<sha256>-<mask sha256[:16]>.png    the mask the model predicted for it
    records/<sha256>.json     metadata (FeedbackRecord); written last, so a record always points at whole files
    state/watermark.json      the last successful retrain: time, run name, model version
    state/retrain_runs.json   outcomes of retraining runs, newest last

Every file is written atomically (temp file + fsync + rename): a reader never sees a partial file. Masks are named
by their content too, so a newer label never overwrites the file an older one (and a retraining plan) points at.
A malformed record or state file is skipped and counted (``FeedbackStats.skipped``), never fatal: a request that
has already stored its feedback must not fail on someone else's bad file.
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


def _content_name(folder: str, record_id: str, png: bytes) -> str:
    return f"{folder}/{record_id}-{hashlib.sha256(png).hexdigest()[:16]}.png"


_BAD_FILE = (OSError, ValueError)  # ValidationError and JSONDecodeError are ValueErrors


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
    skipped: int = Field(0, description="malformed records and run outcomes that were skipped")


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
                mask_file = _content_name("masks", record_id, mask_png)
                atomic_write_bytes(self.path(mask_file), mask_png)
            predicted_file = previous.predicted_mask_file if previous else None
            if predicted_png is not None:
                predicted_file = _content_name("predicted", record_id, predicted_png)
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
        """The record, or None when it is missing or malformed (a new save then replaces a malformed one)."""
        path = self._record_path(record_id)
        try:
            return FeedbackRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except _BAD_FILE:
            return None

    def records(self) -> Iterator[FeedbackRecord]:
        """All readable records, oldest update first. Unreadable records are skipped, never fatal."""
        return iter(self._scan()[0])

    def _scan(self) -> tuple[list[FeedbackRecord], int]:
        """Readable records, oldest update first, and how many files were skipped as malformed."""
        folder = self.root / "records"
        if not folder.is_dir():
            return [], 0
        found, skipped = [], 0
        for path in folder.glob("*.json"):
            try:
                found.append(FeedbackRecord.model_validate_json(path.read_bytes()))
            except _BAD_FILE:
                skipped += 1
        return sorted(found, key=lambda r: (r.updated_at, r.id)), skipped

    def read_watermark(self) -> Watermark | None:
        """The watermark; a malformed file raises (counting from the wrong place would retrain the wrong set)."""
        path = self.root / "state" / "watermark.json"
        try:
            return Watermark.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise ValueError(f"watermark file {path} is malformed: {e}") from e

    def retrain_runs(self) -> list[RetrainOutcome]:
        return self._runs()[0]

    def _runs(self) -> tuple[list[RetrainOutcome], int]:
        """Run outcomes, newest last, and how many malformed entries were skipped."""
        path = self.root / "state" / "retrain_runs.json"
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return [], 0
        except _BAD_FILE:
            return [], 1
        runs, skipped = [], 0
        for entry in raw if isinstance(raw, list) else [raw]:
            try:
                runs.append(RetrainOutcome.model_validate(entry))
            except ValidationError:
                skipped += 1
        return runs, skipped

    def labelled_since(self, watermark: Watermark | None = None) -> list[FeedbackRecord]:
        """Labelled records updated after the watermark (all labelled ones when there is none)."""
        return [
            r
            for r in self.records()
            if r.labelled and (watermark is None or r.updated_at > watermark.watermark)
        ]

    def stats(self, threshold: int | None = None) -> FeedbackStats:
        skipped_watermark = 0
        try:
            watermark = self.read_watermark()
        except ValueError:
            watermark, skipped_watermark = None, 1  # reported, not fatal: the trigger is the one that refuses
        records, skipped_records = self._scan()
        since = [r for r in records if watermark is None or r.updated_at > watermark.watermark]
        by_verdict: dict[str, int] = {v: 0 for v in (*VERDICTS, "none")}
        for r in records:
            by_verdict[r.verdict or "none"] += 1
        runs, skipped_runs = self._runs()
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
            skipped=skipped_records + skipped_runs + skipped_watermark,
        )
