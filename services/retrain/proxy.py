"""``make loop-bench``: the held-out-domain proxy of issue 18, three retrain seeds, mean ± std.

The champion never saw CrackForest (CFD). CFD's training photos play the users' feedback and eval; DeepCrack plays
the base domain. Which id goes where comes from the fixed split file (``ml/data/splits/default.json``), which
carves validation ids out of the public *training* splits only; the public CFD test ids are never read:

    feedback   = CFD train-split ids (54)        eval      = CFD val ids (18)
    base-train = DeepCrack train-split ids (255)  base-eval = DeepCrack val ids (45)

The four folders are symlinks into ``$CRACKSEG_DATASETS`` under ``state/`` (never in git). Then ``crackseg loop
bench`` runs once per seed and the summary (per seed and mean ± std) is written next to the reports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from ml.data.datasets import discover

REPO = Path(__file__).resolve().parents[2]
LAYOUT = {
    "feedback": ("crackforest", "train"),
    "eval": ("crackforest", "val"),
    "base-train": ("deepcrack", "train"),
    "base-eval": ("deepcrack", "val"),
}
SOURCES = {"crackforest": "crackforest", "deepcrack": "deepcrack/train"}


def lay_out(datasets: Path, split_file: Path, out: Path) -> dict[str, Path]:
    """Symlink the proxy's four flat folders under ``out``; raises ValueError naming a missing id or folder."""
    splits = json.loads(split_file.read_text())
    folders = {}
    for name, (dataset, part) in LAYOUT.items():
        root = datasets / SOURCES[dataset]
        if not root.is_dir():
            raise ValueError(
                f"{root} not found: set CRACKSEG_DATASETS to the folder holding {SOURCES[dataset]}"
            )
        by_id = {p.id: p for p in discover(root, None)}
        ids = splits[dataset][part]
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ValueError(f"{root}: ids of {split_file} [{dataset}][{part}] not found: {missing[:5]}")
        folder = out / name
        for sub in ("images", "masks"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for f in (folder / sub).iterdir():
                f.unlink()
        for i in ids:
            pair = by_id[i]
            os.symlink(pair.image.resolve(), folder / "images" / pair.image.name)
            os.symlink(pair.mask.resolve(), folder / "masks" / pair.mask.name)
        folders[name] = folder
    return folders


def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed numbers and mean ± std (sample std) of P1, served-threshold F1, promotion and retrain time."""

    def pick(r: dict[str, Any], when: str, split: str, key: str) -> float:
        block = r[when][split]
        return float(block["model_threshold"]["f1"] if key == "f1_at_threshold" else block[key])

    rows = []
    for r in reports:
        row: dict[str, Any] = {"promoted": r["promoted"], "retrain_seconds": r["retrain_seconds"]}
        for split in ("eval", "base_eval"):
            for key in ("f1_ods", "f1_at_threshold"):
                before, after = pick(r, "before", split, key), pick(r, "after", split, key)
                row[f"{split}_{key}_before"] = before
                row[f"{split}_{key}_after"] = after
                row[f"{split}_{key}_delta"] = after - before
        rows.append(row)
    numeric = [k for k in rows[0] if k != "promoted"]
    stats = {
        k: {
            "mean": statistics.fmean(r[k] for r in rows),
            "std": statistics.stdev(r[k] for r in rows) if len(rows) > 1 else 0.0,
        }
        for k in numeric
    }
    return {
        "n_seeds": len(rows),
        "promoted": sum(r["promoted"] for r in rows),
        "per_seed": rows,
        "stats": stats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--champion", type=Path, required=True, help="a model trained without CrackForest")
    parser.add_argument("--datasets", type=Path, default=Path(os.environ.get("CRACKSEG_DATASETS", "data")))
    parser.add_argument("--split-file", type=Path, default=REPO / "ml" / "data" / "splits" / "default.json")
    parser.add_argument("--out", type=Path, default=REPO / "state" / "loop-bench-proxy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--params", type=Path, help="retraining params (default: the product's)")
    args = parser.parse_args(argv)
    try:
        folders = lay_out(args.datasets, args.split_file, args.out / "data")
    except (ValueError, KeyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    reports = []
    for seed in args.seeds:
        out = args.out / f"report-seed{seed}.json"
        cmd = [sys.executable, "-m", "services.cli", "loop", "bench", "--champion", str(args.champion)]
        cmd += ["--feedback", str(folders["feedback"]), "--eval", str(folders["eval"])]
        cmd += ["--base-train", str(folders["base-train"]), "--base-eval", str(folders["base-eval"])]
        cmd += ["--seed", str(seed), "--out", str(out), "--work", str(args.out / f"work-seed{seed}")]
        cmd += ["--params", str(args.params)] if args.params else []
        print("$", " ".join(cmd), flush=True)
        done = subprocess.run(cmd, cwd=REPO)
        if done.returncode != 0:
            return done.returncode
        reports.append(json.loads(out.read_text()))
    summary = summarise(reports)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    s = summary["stats"]
    for key in ("eval_f1_ods", "eval_f1_at_threshold", "base_eval_f1_ods", "base_eval_f1_at_threshold"):
        b, a, d = s[f"{key}_before"], s[f"{key}_after"], s[f"{key}_delta"]
        print(
            f"{key:<28} before {b['mean']:.4f} ± {b['std']:.4f}  after {a['mean']:.4f} ± {a['std']:.4f}"
            f"  delta {d['mean']:+.4f} ± {d['std']:.4f}"
        )
    print(
        f"promoted {summary['promoted']}/{summary['n_seeds']}; retrain {s['retrain_seconds']['mean']:.0f} s mean"
    )
    print(f"written: {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
