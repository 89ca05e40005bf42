"""A run's results and its reports: ``report.csv`` (a row per photo), ``cracks.csv`` (a row per crack) and
``report.html`` (totals per severity, then the photos worst first with thumbnails, then the failures).

Pure functions from results to text (no files, no torch, no ``ml``): the batch command writes them to its output
folder, the UI's Batch page offers them as downloads."""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter
from collections.abc import Callable, Iterable

from PIL import Image
from pydantic import BaseModel

from services.common.crackstats import CrackStatistics
from services.common.severity import SEVERITIES

REPORT_COLUMNS = [
    "path", "width", "height", "status", "crack_ratio", "total_length_px", "total_length_mm", "max_width_px",
    "max_width_mm", "mean_width_px", "mean_width_mm", "n_cracks", "severity", "severity_rule", "model_version", "ms",
]  # fmt: skip
CRACK_COLUMNS = [
    "path", "crack_id", "length_px", "length_mm", "mean_width_px", "mean_width_mm", "max_width_px", "max_width_mm",
    "orientation", "angle_deg", "n_branch_points", "severity", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
]  # fmt: skip
THUMB = 240


class PhotoResult(BaseModel):
    path: str
    key: str  # names the outputs: masks/<key>.png, overlays/<key>.jpg
    status: str  # "ok", or the error in words
    width: int | None = None
    height: int | None = None
    statistics: CrackStatistics | None = None
    model_version: str | None = None
    inference_ms: float | None = None
    total_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def mask_name(key: str) -> str:
    return f"masks/{key}.png"


def overlay_name(key: str) -> str:
    return f"overlays/{key}.jpg"


def _blank(value: object) -> object:
    return "" if value is None else value


def report_row(r: PhotoResult) -> dict[str, object]:
    s = r.statistics
    row: dict[str, object] = {"path": r.path, "width": r.width, "height": r.height, "status": r.status}
    if s is not None:
        row |= {
            "crack_ratio": s.crack_ratio,
            "total_length_px": s.skeleton_length_px,
            "total_length_mm": s.skeleton_length_mm,
            "max_width_px": s.max_width_px,
            "max_width_mm": s.max_width_mm,
            "mean_width_px": s.mean_width_px,
            "mean_width_mm": s.mean_width_mm,
            "n_cracks": s.n_segments,
            "severity": s.severity,
            "severity_rule": s.severity_rule,
        }
    row |= {"model_version": r.model_version, "ms": r.total_ms}
    return {k: _blank(row.get(k)) for k in REPORT_COLUMNS}


def crack_rows(r: PhotoResult) -> Iterable[dict[str, object]]:
    if r.statistics is None:
        return
    for c in r.statistics.cracks:
        x0, y0, x1, y1 = c.bbox
        yield {
            k: _blank(v)
            for k, v in {
                "path": r.path, "crack_id": c.id, "length_px": c.length_px, "length_mm": c.length_mm,
                "mean_width_px": c.mean_width_px, "mean_width_mm": c.mean_width_mm, "max_width_px": c.max_width_px,
                "max_width_mm": c.max_width_mm, "orientation": c.orientation, "angle_deg": c.angle_deg,
                "n_branch_points": c.n_branch_points, "severity": c.severity,
                "bbox_x0": x0, "bbox_y0": y0, "bbox_x1": x1, "bbox_y1": y1,
            }.items()
        }  # fmt: skip


def _csv(columns: list[str], rows: Iterable[dict[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def report_csv(results: list[PhotoResult]) -> str:
    return _csv(REPORT_COLUMNS, (report_row(r) for r in results))


def cracks_csv(results: list[PhotoResult]) -> str:
    return _csv(CRACK_COLUMNS, (row for r in results for row in crack_rows(r)))


def worst_first(results: list[PhotoResult]) -> list[tuple[PhotoResult, CrackStatistics]]:
    """Measured photos by severity, then widest crack, then total length, all descending."""
    measured = [(r, r.statistics) for r in results if r.ok and r.statistics is not None]
    return sorted(
        measured,
        key=lambda rs: (SEVERITIES.index(rs[1].severity), rs[1].max_width_px, rs[1].skeleton_length_px),
        reverse=True,
    )


def thumbnail(image: bytes | str) -> str:
    """A small inline JPEG (data URI) of an image file or bytes, so the report is one file that opens anywhere."""
    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as img:
            img.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="JPEG", quality=80)
    except OSError:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(px: float, mm: float | None, digits: int = 1) -> str:
    return f"{px:.{digits}f} px" + (f" / {mm:.{max(digits, 2)}f} mm" if mm is not None else "")


def render_html(results: list[PhotoResult], engine: str, thumbnail_of: Callable[[PhotoResult], str]) -> str:
    """The HTML report; ``thumbnail_of`` gives each measured photo's thumbnail (a data URI, or "")."""
    ranked = worst_first(results)
    failed = [r for r in results if not r.ok]
    counts: Counter[str] = Counter(s.severity for _, s in ranked)
    rules = sorted({s.severity_rule for _, s in ranked})
    versions = sorted({r.model_version for r, _ in ranked if r.model_version})
    total_mm = [s.skeleton_length_mm for _, s in ranked]
    total_px = sum(s.skeleton_length_px for _, s in ranked)
    calibrated = bool(total_mm) and all(v is not None for v in total_mm)
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>crackseg report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
        ".high{background:#fdd}.medium{background:#ffe9c6}.low{background:#eef7e8}</style></head><body>",
        "<h1>Crack survey report</h1>",
        f"<p>{len(results)} photos: {len(ranked)} measured, {len(failed)} failed. Engine: {e(engine)}; "
        f"model version(s): {e(', '.join(versions) or 'none')}.</p>",
        "<p>Severity rule(s): " + e("; ".join(rules) or "none") + "</p>",
        "<h2>Totals by severity</h2><table id='totals'><tr><th>severity</th><th>photos</th></tr>",
        *(f"<tr class='{s}'><td>{s}</td><td>{counts.get(s, 0)}</td></tr>" for s in reversed(SEVERITIES)),
        "</table>",
        f"<p>Total crack length: {total_px:.0f} px"
        + (f" = {sum(v or 0.0 for v in total_mm) / 1000:.3f} m" if calibrated else " (no pixel size given)")
        + "</p>",
        "<h2>Photos, worst first</h2><table id='photos'><tr><th>overlay</th><th>photo</th><th>severity</th>"
        "<th>cracks</th><th>total length</th><th>max width</th><th>mean width</th><th>crack area</th></tr>",
    ]
    for r, s in ranked:
        overlay, mask = overlay_name(r.key), mask_name(r.key)
        parts.append(
            f"<tr class='{s.severity}'><td><a href='{e(overlay)}'><img alt='overlay of {e(r.path)}' "
            f"src='{thumbnail_of(r)}'></a></td><td>{e(r.path)}<br>"
            f"<a href='{e(mask)}'>mask</a> · {r.width}×{r.height}</td><td>{s.severity}</td>"
            f"<td>{s.n_segments}</td><td>{_fmt(s.skeleton_length_px, s.skeleton_length_mm, 0)}</td>"
            f"<td>{_fmt(s.max_width_px, s.max_width_mm)}</td><td>{_fmt(s.mean_width_px, s.mean_width_mm)}</td>"
            f"<td>{s.crack_ratio * 100:.2f} %</td></tr>"
        )
    parts.append("</table>")
    if failed:
        parts.append("<h2>Failed photos</h2><table id='failed'><tr><th>photo</th><th>error</th></tr>")
        parts += [f"<tr><td>{e(r.path)}</td><td>{e(r.status)}</td></tr>" for r in failed]
        parts.append("</table>")
    parts.append("<p>Per-crack numbers: cracks.csv · per-photo numbers: report.csv</p></body></html>")
    return "\n".join(parts)
