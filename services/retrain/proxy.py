"""``make loop-bench``: a held-out-domain proxy of issue 18, three retrain seeds, mean ± std.

A proxy is a champion that never saw one public dataset, whose photos then play the users' feedback and eval, while
the dataset it trained on plays the base domain. Which id goes where comes from the fixed split file
(``ml/data/splits/default.json``), which carves validation ids out of the public *training* splits only; the public
test ids (CrackForest's ``split.json`` "test", DeepCrack's test folder) are never read. Two proxies (``--proxy``):

``no-deepcrack`` (default; champion ``models/proxy-no-deepcrack``, trained on CrackForest + synthetic)::

    feedback   = 40 DeepCrack train-split ids (a fixed hash-ranked sample: the inspector corrects 40 photos)
    eval       = DeepCrack val ids (45)
    base-train = CrackForest train-split ids (54)   base-eval = CrackForest val ids (18)

``no-crackforest`` (champion ``models/proxy-no-crackforest``, trained on DeepCrack + synthetic)::

    feedback   = CrackForest train-split ids (54)   eval      = CrackForest val ids (18)
    base-train = DeepCrack train-split ids (255)    base-eval = DeepCrack val ids (45)

The second cannot show a large gain: ``models/default``, which trained on CrackForest itself, scores about what
this champion scores on CrackForest val (README, "The proxy"). The four folders are symlinks into
``$CRACKSEG_DATASETS`` under ``state/`` (never in git). Then ``crackseg loop bench`` runs once per seed and the
summary (per seed and mean ± std) is written next to the reports.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.data.datasets import discover
from ml.fsutil import atomic_write_json

REPO = Path(__file__).resolve().parents[2]
SOURCES = {"crackforest": "crackforest", "deepcrack": "deepcrack/train"}
FEEDBACK_SAMPLE_SEED = 18  # the number: fixes which DeepCrack photos the "inspector" corrects


@dataclass(frozen=True)
class Part:
    """One folder of a proxy: ``dataset``'s ``split`` ids of the split file, or a fixed sample of ``n`` of them."""

    dataset: str
    split: str
    n: int | None = None


@dataclass(frozen=True)
class Proxy:
    """A held-out-domain proxy: its committed champion and its four folders (feedback, eval, base-train, base-eval)."""

    champion: str
    parts: dict[str, Part]


PROXIES = {
    "no-deepcrack": Proxy(
        champion="models/proxy-no-deepcrack",
        parts={
            "feedback": Part("deepcrack", "train", n=40),
            "eval": Part("deepcrack", "val"),
            "base-train": Part("crackforest", "train"),
            "base-eval": Part("crackforest", "val"),
        },
    ),
    "no-crackforest": Proxy(
        champion="models/proxy-no-crackforest",
        parts={
            "feedback": Part("crackforest", "train"),
            "eval": Part("crackforest", "val"),
            "base-train": Part("deepcrack", "train"),
            "base-eval": Part("deepcrack", "val"),
        },
    ),
}
DEFAULT_PROXY = "no-deepcrack"


def sample_ids(ids: list[str], n: int, seed: int = FEEDBACK_SAMPLE_SEED) -> list[str]:
    """The ``n`` ids with the lowest seeded SHA-256 (sorted): the same sample on every machine and Python."""
    if n > len(ids):
        raise ValueError(f"cannot sample {n} ids out of {len(ids)}")

    def rank(i: str) -> bytes:
        return hashlib.sha256(f"{seed}:{i}".encode()).digest()

    return sorted(sorted(ids, key=rank)[:n])


def proxy_ids(proxy: Proxy, splits: dict[str, Any]) -> dict[str, list[str]]:
    """Each folder's ids; raises ValueError when the proxy reuses an id across folders (it never may)."""
    out = {}
    for name, part in proxy.parts.items():
        if part.split not in (
            "train",
            "val",
        ):  # the split file's carve of the public training sets, nothing else
            raise ValueError(f"{name}: a proxy reads only the 'train' and 'val' ids, not {part.split!r}")
        ids = list(splits[part.dataset][part.split])
        out[name] = sample_ids(ids, part.n) if part.n is not None else ids
    seen: dict[tuple[str, str], str] = {}
    for name, ids in out.items():
        for i in ids:
            key = (proxy.parts[name].dataset, i)
            if key in seen:
                raise ValueError(f"id {i} of {key[0]} is in both {seen[key]} and {name}")
            seen[key] = name
    return out


def lay_out(
    datasets: Path, split_file: Path, out: Path, proxy: Proxy = PROXIES[DEFAULT_PROXY]
) -> dict[str, Path]:
    """Symlink the proxy's four flat folders under ``out``; raises ValueError naming a missing id or folder."""
    splits = json.loads(split_file.read_text())
    ids_of = proxy_ids(proxy, splits)
    folders = {}
    for name, part in proxy.parts.items():
        root = datasets / SOURCES[part.dataset]
        if not root.is_dir():
            raise ValueError(
                f"{root} not found: set CRACKSEG_DATASETS to the folder holding {SOURCES[part.dataset]}"
            )
        by_id = {p.id: p for p in discover(root, None)}
        ids = ids_of[name]
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ValueError(
                f"{root}: ids of {split_file} [{part.dataset}][{part.split}] not found: {missing[:5]}"
            )
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
    parser.add_argument(
        "--proxy", choices=sorted(PROXIES), default=DEFAULT_PROXY, help="which held-out domain"
    )
    parser.add_argument("--champion", type=Path, help="the champion (default: the proxy's committed model)")
    parser.add_argument("--datasets", type=Path, default=Path(os.environ.get("CRACKSEG_DATASETS", "data")))
    parser.add_argument("--split-file", type=Path, default=REPO / "ml" / "data" / "splits" / "default.json")
    parser.add_argument("--out", type=Path, help="work folder (default: state/loop-bench-<proxy>)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--params", type=Path, help="retraining params (default: the product's)")
    args = parser.parse_args(argv)
    proxy = PROXIES[args.proxy]
    args.champion = args.champion or REPO / proxy.champion
    args.out = args.out or REPO / "state" / f"loop-bench-{args.proxy}"
    try:
        folders = lay_out(args.datasets, args.split_file, args.out / "data", proxy)
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
    summary = {"proxy": args.proxy, "champion": str(args.champion), **summarise(reports)}
    atomic_write_json(args.out / "summary.json", summary)
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
