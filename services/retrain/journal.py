"""The run journal: one JSON file per run, rewritten atomically after every step (the crash-consistency record).

``status`` is ``running`` until the run ends ``promoted`` or ``rejected`` (terminal: a rerun is a no-op) or
``failed``. ``completed`` lists finished steps in order; a rerun resumes after the last one and follows ``plan``
exactly. ``attempts`` counts every try (in-process retries and restarts after a crash); once it reaches
``attempt_budget`` nothing starts the run again until ``crackseg retrain retry`` raises the budget.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ml.fsutil import atomic_write_json
from services.retrain.plan import RetrainPlan

Status = Literal["running", "promoted", "rejected", "failed"]
TERMINAL: tuple[Status, ...] = ("promoted", "rejected")


class RunJournal(BaseModel):
    run_name: str
    plan: RetrainPlan
    status: Status = "running"
    completed: list[str] = Field(default_factory=list)
    attempts: int = 0
    attempt_budget: int = 3
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
    served_version: str | None = None  # what the predictor said it serves after the rollout step
    rollout_note: str | None = None  # why the alias did or did not move (a failed rollout says which way)
    last_error: str | None = None

    def done(self, step: str) -> bool:
        return step in self.completed

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def gave_up(self) -> bool:
        """Out of attempts: only new feedback (a new run) or ``crackseg retrain retry`` starts it again."""
        return not self.finished and self.attempts >= self.attempt_budget

    def refusal(self) -> str | None:
        """Why this run must not be started again, or None."""
        if self.finished:
            return f"run already finished: {self.status}"
        if self.gave_up:
            return (
                f"run {self.run_name} gave up after {self.attempts} attempts ({self.last_error or 'no error'}); "
                "new feedback starts a new run, or `crackseg retrain retry` tries this one again"
            )
        return None


def journal_path(journal_dir: Path, run_name: str) -> Path:
    return journal_dir / f"{run_name}.json"


def load_journal(journal_dir: Path, run_name: str) -> RunJournal | None:
    path = journal_path(journal_dir, run_name)
    try:
        return RunJournal.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ValueError(f"run journal {path} is malformed: {e}") from e


def save_journal(journal_dir: Path, journal: RunJournal) -> None:
    atomic_write_json(journal_path(journal_dir, journal.run_name), journal.model_dump(mode="json"))
