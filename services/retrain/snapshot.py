"""Step 1 of a run: snapshot base data + all labelled feedback, version it with DVC, push it to the remote.

The snapshot workspace is rebuilt from scratch on every attempt; its content depends only on the frozen plan and
the base data, so a rerun after a crash yields the same DVC hash (the lineage tag ``dataset_hash``). Layout::

    <work>/snapshots/<run>/            a DVC repository (no git: the workspace is not part of the source tree)
        data.dvc                       what ``dvc add data`` wrote; its md5 is the dataset hash
        data/base/…                    a copy of the base dataset (its own layout, split.json kept)
        data/feedback/images/<id>.<ext>, data/feedback/masks/<id>.png, data/feedback/manifest.json
    <work>/dvc-site-cache/             DVC's site cache (state, indexes), unless DVC_SITE_CACHE_DIR says otherwise

DVC's own default site cache is ``/var/tmp/dvc``: on a read-only root filesystem (every crackseg pod) the first
``Repo`` would fail there, so the snapshot points it at the work folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel

from ml.fsutil import atomic_write_json
from services.common.feedback import FeedbackStore
from services.retrain.errors import RetrainError
from services.retrain.plan import RetrainPlan

REMOTE_NAME = "storage"
SITE_CACHE_ENV = "DVC_SITE_CACHE_DIR"


@contextlib.contextmanager
def _site_cache(work_dir: Path) -> Iterator[Path]:
    """DVC's site cache in a writable place for the calls inside: ``$DVC_SITE_CACHE_DIR`` or ``<work>/dvc-site-cache``.

    Raises :class:`RetrainError` naming the folder when it cannot be created or written.
    """
    configured = os.environ.get(SITE_CACHE_ENV)
    folder = Path(configured) if configured else (work_dir / "dvc-site-cache").resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RetrainError(
            f"DVC site cache {folder} is not writable ({e}); set {SITE_CACHE_ENV} to a writable folder"
        ) from e
    os.environ[SITE_CACHE_ENV] = str(folder)
    try:
        yield folder
    finally:
        if configured is None:
            os.environ.pop(SITE_CACHE_ENV, None)


class Snapshot(BaseModel):
    """Where the snapshot is and its DVC identity."""

    workspace: Path
    base_dir: Path
    feedback_dir: Path
    dataset_hash: str
    n_feedback: int
    remote: Path


def _copy_feedback(plan: RetrainPlan, store: FeedbackStore, out: Path) -> int:
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir(parents=True)
    manifest = []
    for item in plan.training_items:  # all labelled feedback, not only the new items
        record = store.get(item.id)
        label_file = item.label_file or (record.label_file if record else None)
        if record is None or label_file is None or not store.path(label_file).is_file():
            raise RetrainError(
                f"feedback record {item.id} vanished or lost its label {label_file} since the run was planned"
            )
        image = store.path(record.image_file)
        label = store.path(label_file)  # the label as planned, even if it was corrected since
        shutil.copyfile(image, out / "images" / f"{record.id}{image.suffix}")
        shutil.copyfile(label, out / "masks" / f"{record.id}.png")
        manifest.append(
            {
                "id": record.id,
                "updated_at": item.updated_at.isoformat(),
                "verdict": record.verdict,
                "label": "corrected" if label_file.startswith("masks/") else "predicted",
            }
        )
    atomic_write_json(out / "manifest.json", manifest)
    return len(manifest)


def build_snapshot(
    plan: RetrainPlan, store: FeedbackStore, base_data: Path, work_dir: Path, remote: Path
) -> Snapshot:
    """Copy, ``dvc add``, ``dvc push``; returns the snapshot with its dataset hash."""
    from dvc.exceptions import DvcException

    if not base_data.is_dir():
        raise RetrainError(f"base dataset {base_data} is not a directory (CRACKSEG_BASE_DATA)")
    workspace = (work_dir / "snapshots" / plan.run_name).resolve()
    shutil.rmtree(workspace, ignore_errors=True)
    data = workspace / "data"
    shutil.copytree(base_data, data / "base", ignore=shutil.ignore_patterns(".*"))
    n_feedback = _copy_feedback(plan, store, data / "feedback")
    remote = remote.resolve()
    remote.mkdir(parents=True, exist_ok=True)
    with _site_cache(work_dir) as site_cache:
        try:
            _dvc_add_push(workspace, data, remote)
        except DvcException as e:
            raise RetrainError(f"DVC snapshot of {workspace} to remote {remote} failed: {e}") from e
        except OSError as e:  # a folder DVC needs is missing or read-only
            raise RetrainError(
                f"DVC snapshot of {workspace} to remote {remote} failed (site cache {site_cache}): {e}"
            ) from e
    dvc_file = yaml.safe_load((workspace / "data.dvc").read_text())
    digest = str(dvc_file["outs"][0]["md5"]).removesuffix(".dir")
    return Snapshot(
        workspace=workspace,
        base_dir=data / "base",
        feedback_dir=data / "feedback",
        dataset_hash=digest,
        n_feedback=n_feedback,
        remote=remote,
    )


def _dvc_add_push(workspace: Path, data: Path, remote: Path) -> None:
    from dvc.repo import Repo

    repo = Repo.init(str(workspace), no_scm=True, force=True)
    with repo.config.edit() as conf:
        conf["remote"][REMOTE_NAME] = {"url": str(remote)}
        conf["core"]["remote"] = REMOTE_NAME
        conf["core"]["analytics"] = False
    repo.close()
    repo = Repo(str(workspace))  # a fresh object sees the new config
    try:
        repo.add(str(data))
        repo.push(remote=REMOTE_NAME)
    finally:
        repo.close()
