"""One batch run: skip what is done, process the rest in a small thread pool with a progress bar, write each
photo's mask, overlay and result as it finishes (so an interrupted run resumes), then the reports."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ml.fsutil import atomic_write_bytes
from services.batch.engines import Engine, PhotoError
from services.batch.inputs import Photo
from services.batch.report import PhotoResult
from services.batch.results import is_done, mask_path, overlay_path, write_reports, write_result
from services.common import annotate


@dataclass(frozen=True)
class Summary:
    total: int
    ok: int
    failed: int
    skipped: int

    def line(self, out: Path) -> str:
        return (
            f"{self.total} photos: {self.ok} ok ({self.skipped} already done), {self.failed} failed; "
            f"report: {out / 'report.html'}"
        )


def process(photo: Photo, engine: Engine, out: Path) -> PhotoResult:
    """Run one photo; any failure of this photo becomes its result's status, never an exception."""
    start = time.perf_counter()
    try:
        data = photo.path.read_bytes()
    except OSError as e:
        return PhotoResult(path=str(photo.path), key=photo.key, status=f"cannot read the file: {e.strerror}")
    try:
        outcome = engine.run(data, photo.path.name)
    except PhotoError as e:
        return PhotoResult(path=str(photo.path), key=photo.key, status=e.message)
    except Exception as e:  # one photo that breaks a decoder or the model must not stop a survey of hundreds
        return PhotoResult(path=str(photo.path), key=photo.key, status=f"failed: {type(e).__name__}: {e}")
    stats = outcome.statistics
    atomic_write_bytes(mask_path(out, photo.key), annotate.png(outcome.mask))
    boxes = [(c.id, c.bbox) for c in stats.cracks]
    atomic_write_bytes(
        overlay_path(out, photo.key), annotate.jpeg(annotate.annotated(outcome.rgb, outcome.mask, boxes))
    )
    return PhotoResult(
        path=str(photo.path),
        key=photo.key,
        status="ok",
        width=int(outcome.rgb.shape[1]),
        height=int(outcome.rgb.shape[0]),
        statistics=stats,
        model_version=outcome.model_version,
        inference_ms=outcome.inference_ms,
        total_ms=round((time.perf_counter() - start) * 1000.0, 1),
    )


def run_batch(
    photos: list[Photo],
    engine: Engine,
    out: Path,
    *,
    force: bool = False,
    jobs: int = 2,
    progress: bool = True,
) -> Summary:
    results: dict[str, PhotoResult] = {}
    todo: list[Photo] = []
    for photo in photos:
        done = None if force else is_done(out, photo.key)
        if done is not None:
            results[photo.key] = done
        else:
            todo.append(photo)
    skipped = len(results)
    bar = tqdm(total=len(photos), initial=skipped, unit="photo", disable=not progress, dynamic_ncols=True)
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="crackseg-batch") as pool:
            futures = {pool.submit(process, photo, engine, out): photo for photo in todo}
            for future in as_completed(futures):
                result = future.result()
                write_result(out, result)
                results[result.key] = result
                bar.update(1)
                if not result.ok:
                    bar.write(f"{result.path}: {result.status}")
    finally:
        bar.close()
    ordered = [results[p.key] for p in photos]
    write_reports(out, ordered, engine.description)
    ok = sum(r.ok for r in ordered)
    return Summary(total=len(photos), ok=ok, failed=len(photos) - ok, skipped=skipped)
