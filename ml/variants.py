"""The width/depth/loss screening behind models/default: train a few recipe variants, measure them, write a table.

``crackseg variants`` (``make variants``) reads a screening file (``ml/recipes/variants/screening.yaml``): a base
recipe, one seed, one short budget and a list of variants, each the base recipe with a few keys changed. For every
variant it

1. trains and calibrates it with :func:`ml.recipe.train_default` into ``OUT/<name>`` — resumable, and a variant
   whose ``summary.json`` exists is not trained again (``--only NAME`` trains a subset, e.g. two at once);
2. measures it (``--measure``, after all are trained, ideally on a quiet machine): parameters, GFLOPs of one
   forward pass at 544×384 (multiply-add = 2 FLOPs, :func:`ml.bench.count_flops`), and the p50 latency of its
   exported ``model.onnx`` in ONNX Runtime fp32 at 544×384 with 2 intra-op threads;
3. writes the table to ``models/default/variants.json`` (atomic), which ``crackseg model-card`` renders.

Validation numbers are the recipe's own (P1/P2/OIS/AP on the fixed validation ids of the split file, after
calibration); nothing here reads a public test split.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ml.recipe import SUMMARY_FILE, Recipe, read_yaml_model

DEFAULT_SCREENING = Path(__file__).with_name("recipes") / "variants" / "screening.yaml"
DEFAULT_TABLE = Path("models/default/variants.json")
TIMING_FILE = "variant.json"
INPUT_HW = (384, 544)  # (H, W): a DeepCrack photo, the speed goal's size
ONNX_THREADS = 2
ONNX_WARMUP = 3
ONNX_RUNS = 20
ONNX_ROUNDS = 3
METRICS = ("val_p1", "val_p2", "val_ois", "val_ap")


class Variant(BaseModel):
    """One row: the base recipe with ``init_from`` and/or some ``train`` keys changed."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    init_from: str | None = None  # only applied when the key is present (null: train from scratch)
    train: dict[str, Any] = Field(default_factory=dict)


class Screening(BaseModel):
    """A screening file: the base recipe, the seed, the equal budget and the variants."""

    model_config = ConfigDict(extra="forbid")

    base: str
    seed: int = 0
    budget: dict[str, Any]
    shipped: str | None = Field(
        None, description="the variant that is the shipped recipe, marked in the card"
    )
    variants: list[Variant] = Field(min_length=1)

    @classmethod
    def load(cls, path: str | os.PathLike[str] = DEFAULT_SCREENING) -> Screening:
        screening = read_yaml_model(cls, path, "screening file")
        names = [v.name for v in screening.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: variant names must be unique, got {names}")
        if screening.shipped is not None and screening.shipped not in names:
            raise ValueError(
                f"{path}: shipped {screening.shipped!r} is not a variant; valid: {', '.join(names)}"
            )
        for v in screening.variants:
            clash = sorted(set(v.train) & set(screening.budget))
            if clash:
                raise ValueError(
                    f"{path}: variant {v.name!r} sets budget keys {clash}: every variant gets the same budget"
                )
        return screening

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ValueError(f"no variant {name!r}; valid: {', '.join(v.name for v in self.variants)}")


def variant_recipe(screening: Screening, variant: Variant) -> tuple[Recipe, dict[str, Any]]:
    """(recipe, budget overrides) of one variant.

    A variant that starts from a checkpoint (``init_from``) trains that checkpoint's architecture, so asking for
    another width or depth would be silently ignored: that is refused here, naming the variant.
    """
    base = Recipe.load(screening.base)
    init_from = variant.init_from if "init_from" in variant.model_fields_set else base.init_from
    train = {**base.train, **variant.train}
    if init_from is not None:
        parent = _read_json(Path(init_from) / "config.json")
        for key, default in (("base_width", 16), ("depth", 4)):
            wanted = train.get(key, default)
            if wanted != parent.get(key):
                raise ValueError(
                    f"variant {variant.name!r}: init_from {init_from} has {key} {parent.get(key)}, but the variant "
                    f"asks for {wanted}; init_from loads the parent's architecture, so train from scratch "
                    "(init_from: null) to change it"
                )
    recipe = base.model_copy(update={"init_from": init_from, "train": train})
    return recipe, dict(screening.budget)


def train_variant(
    screening: Screening,
    variant: Variant,
    out_root: str | os.PathLike[str],
    datasets_root: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] = "state/cache",
) -> dict[str, Any]:
    """Train + calibrate one variant into ``out_root/<name>`` (skipped when done); returns its summary."""
    from ml.fsutil import atomic_write_json
    from ml.recipe import read_summary, train_default

    out = Path(out_root) / variant.name
    if (out / SUMMARY_FILE).is_file():
        return read_summary(out / SUMMARY_FILE)
    recipe, budget = variant_recipe(screening, variant)
    resumed = (out / "checkpoint").exists()
    started = time.perf_counter()
    summary = train_default(
        recipe,
        seed=screening.seed,
        out_dir=out,
        datasets_root=datasets_root,
        cache_dir=cache_dir,
        overrides=budget,
    )
    atomic_write_json(
        out / TIMING_FILE,
        {
            "train_seconds": round(time.perf_counter() - started, 1),
            "resumed": resumed,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
    )
    return summary


def onnx_latency_ms(
    onnx_paths: Sequence[Path],
    hw: tuple[int, int] = INPUT_HW,
    threads: int = ONNX_THREADS,
    runs: int = ONNX_RUNS,
    rounds: int = ONNX_ROUNDS,
) -> list[dict[str, float]]:
    """p50/p90 wall ms of a batch-1 fp32 run of each graph in ONNX Runtime, after ``ONNX_WARMUP`` runs.

    The graphs are timed in ``rounds`` interleaved rounds of ``runs`` calls each, so a burst of other load on a
    shared machine falls on every model rather than on whichever was being timed. Sessions are configured as the
    predictor's (:class:`ml.onnx_runtime.OnnxSegmenter`): ``threads`` intra-op threads, sequential execution, all
    graph optimisations, no spinning.
    """
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    x = np.random.default_rng(0).random((1, 3, *hw), dtype=np.float32)
    sessions = [ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]) for p in onnx_paths]
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]
    for session, feed in zip(sessions, feeds, strict=True):
        for _ in range(ONNX_WARMUP):
            session.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(rounds):
        for session, feed, out in zip(sessions, feeds, times, strict=True):
            for _ in range(runs):
                start = time.perf_counter()
                session.run(None, feed)
                out.append((time.perf_counter() - start) * 1000)
    result = []
    for t in times:
        t.sort()
        result.append({"p50": statistics.median(t), "p90": t[min(len(t) - 1, round(0.9 * (len(t) - 1)))]})
    return result


def measure_variant(model_dir: Path, hw: tuple[int, int] = INPUT_HW) -> dict[str, Any]:
    """Architecture, parameters and GFLOPs at ``hw`` of a trained variant's model (latency: ``onnx_latency_ms``)."""
    import torch

    from ml.bench import count_flops
    from ml.checkpoint import load_model

    loaded = load_model(model_dir)
    params = sum(p.numel() for p in loaded.module.parameters())
    flops = count_flops(loaded.module, torch.zeros(1, 3, *hw))
    return {
        "base_width": loaded.config.base_width,
        "depth": loaded.config.depth,
        "params": params,
        "gflop": flops / 1e9,
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


def _relative(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working directory (the repository root) when it lies inside it."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def build_table(
    screening: Screening,
    screening_path: str | os.PathLike[str],
    out_root: str | os.PathLike[str],
    measure: Callable[[Path], dict[str, Any]] = measure_variant,
    time_onnx: Callable[[Sequence[Path]], list[dict[str, float]]] = onnx_latency_ms,
) -> dict[str, Any]:
    """The ``variants.json`` document: every variant's recipe keys, validation numbers and measurements.

    Raises:
        ValueError: a variant has not finished training (its ``summary.json`` is missing).
    """
    from ml.bench import cpu_name

    base = Recipe.load(screening.base)
    rows = []
    for variant in screening.variants:
        out = Path(out_root) / variant.name
        if not (out / SUMMARY_FILE).is_file():
            raise ValueError(f"variant {variant.name!r} has not finished: {out / SUMMARY_FILE} is missing")
        summary = _read_json(out / SUMMARY_FILE)
        timing = _read_json(out / TIMING_FILE) if (out / TIMING_FILE).is_file() else {}
        recipe, _ = variant_recipe(screening, variant)
        train = recipe.train
        rows.append(
            {
                "name": variant.name,
                "description": variant.description,
                "init_from": recipe.init_from,
                "loss": {
                    "pos_weight": train.get("pos_weight", 10.0),
                    "bce_weight": train.get("bce_weight", 1.0),
                    "dice_weight": train.get("dice_weight", 1.0),
                    "focal_gamma": train.get("focal_gamma", 0.0),
                },
                **measure(out / "model"),
                "threshold": summary["threshold"],
                **{k: summary["metrics"][k] for k in METRICS},
                "per_source": summary.get("per_source", {}),
                "train_seconds": timing.get("train_seconds"),
                "train_resumed": timing.get("resumed"),
            }
        )
    load_before = os.getloadavg()
    latencies = time_onnx([Path(out_root) / r["name"] / "model" / "model.onnx" for r in rows])
    load_after = os.getloadavg()
    for row, latency in zip(rows, latencies, strict=True):
        row["onnx_ms_p50"], row["onnx_ms_p90"] = latency["p50"], latency["p90"]
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "screening": _relative(screening_path),
        "base_recipe": screening.base,
        "seed": screening.seed,
        "budget": screening.budget,
        "base_budget": {k: base.train[k] for k in ("epochs", "steps_per_epoch") if k in base.train},
        "shipped": screening.shipped,
        "machine": {
            "host": socket.gethostname(),
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before_timing": [round(x, 2) for x in load_before],
            "loadavg_after_timing": [round(x, 2) for x in load_after],
        },
        "timing": {
            "runtime": "onnxruntime fp32, CPUExecutionProvider",
            "input": {"height": INPUT_HW[0], "width": INPUT_HW[1]},
            "threads": ONNX_THREADS,
            "warmup": ONNX_WARMUP,
            "runs": ONNX_RUNS,
            "rounds": ONNX_ROUNDS,
            "flop_convention": "FLOP = 2 x multiply-add (FlopCounterMode); conv and matmul only",
        },
        "variants": rows,
    }


def run(
    screening_path: str | os.PathLike[str],
    *,
    out_root: str | os.PathLike[str],
    datasets_root: str | os.PathLike[str],
    table: str | os.PathLike[str] | None,
    only: Sequence[str] = (),
    cache_dir: str | os.PathLike[str] = "state/cache",
    progress: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """Train the variants named in ``only`` (all when empty); with ``table``, then measure all and write it."""
    from ml.fsutil import atomic_write_json

    screening = Screening.load(screening_path)
    chosen = [screening.variant(n) for n in only] if only else screening.variants
    for variant in chosen:
        summary = train_variant(screening, variant, out_root, datasets_root, cache_dir)
        progress(f"{variant.name}: val P1 {summary['metrics']['val_p1']:.4f}")
    if table is None:
        return None
    doc = build_table(screening, screening_path, out_root)
    atomic_write_json(Path(table), doc)
    progress(f"table written to {table}")
    return doc
