"""The Batch page's work, as plain functions (no Streamlit): expand uploads and ZIPs into photos, run each through
the predictor, measure at the session's calibration, and package masks, overlays, CSVs and the HTML report exactly
as ``crackseg predict`` writes them (:mod:`services.batch.report`)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from services.batch.report import (
    PhotoResult,
    cracks_csv,
    mask_name,
    overlay_name,
    render_html,
    report_csv,
    thumbnail,
)
from services.common import annotate
from services.common.crackstats import statistics_from
from services.common.measure import measure
from services.common.severity import Surface
from services.ui.client import PredictorClient, PredictorError, PredictorUnavailable
from services.ui.overlay import decode_image, decode_mask

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_PHOTOS = 500
MAX_ZIP_BYTES = 1 << 30  # uncompressed: a ZIP bomb stops here


@dataclass
class BatchOutput:
    """Everything a run produced, kept in the session so the downloads survive reruns."""

    results: list[PhotoResult] = field(default_factory=list)
    masks: dict[str, bytes] = field(default_factory=dict)  # key → PNG
    overlays: dict[str, bytes] = field(default_factory=dict)  # key → JPEG
    stopped: str | None = None  # why the run stopped early (predictor unreachable)

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    def report_csv(self) -> str:
        return report_csv(self.results)

    def cracks_csv(self) -> str:
        return cracks_csv(self.results)

    def report_html(self, engine: str) -> str:
        return render_html(self.results, engine, lambda r: thumbnail(self.overlays.get(r.key, b"")))

    def zip(self, engine: str) -> bytes:
        """masks/, overlays/, report.csv, cracks.csv and report.html: the report's links work inside it."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for key, data in self.masks.items():
                z.writestr(mask_name(key), data)
            for key, data in self.overlays.items():
                z.writestr(overlay_name(key), data)
            z.writestr("report.csv", self.report_csv())
            z.writestr("cracks.csv", self.cracks_csv())
            z.writestr("report.html", self.report_html(engine))
        return buf.getvalue()


def _is_photo(name: str) -> bool:
    path = PurePosixPath(name)
    return path.suffix.lower() in PHOTO_SUFFIXES and not any(
        p.startswith((".", "__MACOSX")) for p in path.parts
    )


def expand(uploads: list[tuple[str, bytes]]) -> tuple[list[tuple[str, bytes]], list[PhotoResult]]:
    """Photos from the uploads (a ZIP contributes its photos, by their path inside it), and a failed result for
    each upload that cannot be used. Names are unique; at most ``MAX_PHOTOS``."""
    photos: list[tuple[str, bytes]] = []
    failed: list[PhotoResult] = []
    for name, data in uploads:
        if not name.lower().endswith(".zip"):
            photos.append((name, data))
            continue
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                entries = [i for i in z.infolist() if not i.is_dir() and _is_photo(i.filename)]
                if sum(i.file_size for i in entries) > MAX_ZIP_BYTES:
                    raise ValueError(f"it unpacks to more than {MAX_ZIP_BYTES >> 20} MB")
                photos += [(i.filename, z.read(i)) for i in entries]
        except (zipfile.BadZipFile, ValueError, OSError) as e:
            failed.append(PhotoResult(path=name, key=name, status=f"not a usable ZIP: {e}"))
    if len(photos) > MAX_PHOTOS:
        raise ValueError(
            f"{len(photos)} photos; the Batch page takes at most {MAX_PHOTOS} (use crackseg predict)"
        )
    return _unique(photos), failed


def _unique(photos: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    seen: set[str] = set()
    out = []
    for name, data in photos:
        stem = str(PurePosixPath(name).with_suffix(""))
        key, n = stem, 1
        while key in seen:
            n += 1
            key = f"{stem}-{n}"
        seen.add(key)
        out.append((f"{key}{PurePosixPath(name).suffix}", data))
    return out


def key_of(name: str) -> str:
    return str(PurePosixPath(name).with_suffix(""))


def run_one(
    client: PredictorClient,
    name: str,
    data: bytes,
    mm_per_px: float | None,
    surface: Surface,
    output: BatchOutput,
) -> PhotoResult:
    """Segment one photo, measure it at this calibration, keep its mask and overlay in ``output``.

    Raises:
        PredictorUnavailable: the predictor cannot be reached: the run should stop, not fail every photo.
    """
    key = key_of(name)
    try:
        rgb = decode_image(data)
    except ValueError as e:
        result = PhotoResult(path=name, key=key, status=f"not an image this UI can read: {e}")
    else:
        try:
            prediction = client.predict(data, PurePosixPath(name).name, probabilities=False)
            mask = decode_mask(prediction.mask_png, shape=rgb.shape[:2])
        except PredictorUnavailable:
            raise
        except PredictorError as e:
            result = PhotoResult(path=name, key=key, status=e.message)
        except ValueError as e:
            result = PhotoResult(
                path=name, key=key, status=f"the predictor's mask does not fit the photo: {e}"
            )
        else:
            stats = statistics_from(measure(mask), mm_per_px, surface)
            boxes = [(c.id, c.bbox) for c in stats.cracks]
            output.masks[key] = annotate.png(mask)
            output.overlays[key] = annotate.jpeg(annotate.annotated(rgb, mask, boxes))
            result = PhotoResult(
                path=name,
                key=key,
                status="ok",
                width=int(rgb.shape[1]),
                height=int(rgb.shape[0]),
                statistics=stats,
                model_version=prediction.model_version,
                inference_ms=prediction.inference_ms,
            )
    output.results.append(result)
    return result
