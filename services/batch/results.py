"""The output folder: one JSON result per photo under ``DIR/.results/`` (what resume reads), the run's options
(``run.json``), and the reports written atomically.

A photo is done when its result says ``ok`` and its mask and overlay exist; anything else runs again.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from ml.fsutil import atomic_write_bytes
from services.batch.report import (
    PhotoResult,
    cracks_csv,
    mask_name,
    overlay_name,
    render_html,
    report_csv,
    thumbnail,
)

RESULTS = ".results"
RUN_FILE = "run.json"


class RunOptions(BaseModel):
    """What changes the outputs: resuming with different options would mix two kinds of result."""

    engine: str
    mm_per_px: float | None
    surface: str


def mask_path(out: Path, key: str) -> Path:
    return out / mask_name(key)


def overlay_path(out: Path, key: str) -> Path:
    return out / overlay_name(key)


def result_path(out: Path, key: str) -> Path:
    return out / RESULTS / f"{key}.json"


def write_result(out: Path, result: PhotoResult) -> None:
    atomic_write_bytes(result_path(out, result.key), result.model_dump_json(indent=1).encode())


def read_result(out: Path, key: str) -> PhotoResult | None:
    path = result_path(out, key)
    try:
        return PhotoResult.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None  # missing or from an interrupted older writer: the photo runs again


def is_done(out: Path, key: str) -> PhotoResult | None:
    result = read_result(out, key)
    if (
        result is not None
        and result.ok
        and mask_path(out, key).is_file()
        and overlay_path(out, key).is_file()
    ):
        return result
    return None


def check_options(out: Path, options: RunOptions, force: bool) -> None:
    """Record the options; refuse to resume a folder made with other ones unless ``force``."""
    path = out / RUN_FILE
    if path.is_file() and not force:
        try:
            previous = RunOptions.model_validate_json(path.read_bytes())
        except ValidationError:
            previous = None
        if previous is not None and previous != options:
            raise ValueError(
                f"{out} holds results made with other options ({previous.model_dump()}); "
                "pass --force to redo every photo, or choose another --out"
            )
    atomic_write_bytes(path, options.model_dump_json(indent=1).encode())


def write_reports(out: Path, results: list[PhotoResult], engine: str) -> None:
    """``report.csv``, ``cracks.csv`` and ``report.html`` for ``results`` (in input order), atomically."""
    atomic_write_bytes(out / "report.csv", report_csv(results).encode("utf-8"))
    atomic_write_bytes(out / "cracks.csv", cracks_csv(results).encode("utf-8"))
    page = render_html(results, engine, lambda r: thumbnail(str(overlay_path(out, r.key))))
    atomic_write_bytes(out / "report.html", page.encode("utf-8"))
