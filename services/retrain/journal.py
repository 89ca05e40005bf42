"""The run journal: one JSON file per run, rewritten atomically after every step (the crash-consistency record).

``status`` is ``running`` until the run ends ``promoted`` or ``rejected`` (terminal: a rerun is a no-op) or
``failed`` (a rerun resumes after the last completed step). ``completed`` lists finished steps in order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ml.fsutil import atomic_write_json
from services.retrain.plan import RetrainPlan

Status = Literal["running", "promoted", "rejected", "failed"]


class RunJournal(BaseModel):
    run_name: str
    plan: RetrainPlan
    status: Status = "running"
    completed: list[str] = Field(default_factory=list)
    attempts: int = 0
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    parent_version: str | None = None
    dataset_hash: str | None = None
    snapshot_workspace: Path | None = None
    snapshot_base: Path | None = None
    snapshot_feedback: Path | None = None
    challenger_dir: Path | None = None
    mlflow_run_id: str | None = None
    challenger_metrics: dict[str, float] = Field(default_factory=dict)
    champion_metrics: dict[str, float] = Field(default_factory=dict)
    challenger_version: str | None = None
    promote: bool | None = None
    reason: str | None = None
    exported_dir: Path | None = None
    last_error: str | None = None

    def done(self, step: str) -> bool:
        return step in self.completed


def journal_path(journal_dir: Path, run_name: str) -> Path:
    return journal_dir / f"{run_name}.json"


def load_journal(journal_dir: Path, run_name: str) -> RunJournal | None:
    path = journal_path(journal_dir, run_name)
    try:
        return RunJournal.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None


def save_journal(journal_dir: Path, journal: RunJournal) -> None:
    atomic_write_json(journal_path(journal_dir, journal.run_name), journal.model_dump(mode="json"))
