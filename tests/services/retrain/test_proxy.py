"""The loop bench's proxies: which ids go where, the fixed feedback sample, and that no test id is ever read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.retrain import proxy as px

REPO = Path(__file__).resolve().parents[3]
SPLITS = json.loads((REPO / "ml" / "data" / "splits" / "default.json").read_text())


def test_feedback_sample_is_fixed_sorted_and_a_subset() -> None:
    ids = [f"{i:03d}" for i in range(100)]
    sample = px.sample_ids(ids, 40)
    assert sample == px.sample_ids(list(reversed(ids)), 40)  # the input order does not matter
    assert sample == sorted(sample) and len(set(sample)) == 40 and set(sample) <= set(ids)
    assert sample != ids[:40]  # a hash-ranked sample, not the first ids
    assert px.sample_ids(ids, 40, seed=1) != sample
    with pytest.raises(ValueError, match="cannot sample 101"):
        px.sample_ids(ids, 101)


@pytest.mark.parametrize("name", sorted(px.PROXIES))
def test_proxy_ids_come_from_the_split_file_train_and_val_only(name: str) -> None:
    ids = px.proxy_ids(px.PROXIES[name], SPLITS)
    for folder, part in px.PROXIES[name].parts.items():
        assert part.split in ("train", "val")
        assert set(ids[folder]) <= set(SPLITS[part.dataset][part.split]), folder
    # Where the data is present: every CrackForest id is one of its public *training* ids.
    cfd_split = Path(os.environ.get("CRACKSEG_DATASETS", "data")) / "crackforest" / "split.json"
    if cfd_split.is_file():
        public_train = set(json.loads(cfd_split.read_text())["train"])
        for folder in ids:
            if px.PROXIES[name].parts[folder].dataset == "crackforest":
                assert set(ids[folder]) <= public_train, folder


def test_no_deepcrack_proxy_layout() -> None:
    proxy = px.PROXIES["no-deepcrack"]
    ids = px.proxy_ids(proxy, SPLITS)
    assert px.DEFAULT_PROXY == "no-deepcrack" and proxy.champion == "models/proxy-no-deepcrack"
    assert len(ids["feedback"]) == 40 and ids["feedback"] == px.sample_ids(SPLITS["deepcrack"]["train"], 40)
    assert ids["eval"] == SPLITS["deepcrack"]["val"] and len(ids["eval"]) == 45
    assert ids["base-train"] == SPLITS["crackforest"]["train"]
    assert ids["base-eval"] == SPLITS["crackforest"]["val"]


def test_an_id_in_two_folders_is_refused() -> None:
    leaky = px.Proxy(
        champion="x",
        parts={"feedback": px.Part("deepcrack", "train"), "eval": px.Part("deepcrack", "train", n=3)},
    )
    with pytest.raises(ValueError, match="in both feedback and eval"):
        px.proxy_ids(leaky, SPLITS)


def test_a_proxy_reading_a_test_split_is_refused() -> None:
    splits = {**SPLITS, "crackforest": {**SPLITS["crackforest"], "test": ["004"]}}
    peeking = px.Proxy(champion="x", parts={"eval": px.Part("crackforest", "test")})
    with pytest.raises(ValueError, match="only the 'train' and 'val' ids, not 'test'"):
        px.proxy_ids(peeking, splits)


def _dataset(root: Path, ids: list[str]) -> None:
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for i in ids:
            (root / sub / f"{i}.png").write_bytes(b"")


def test_lay_out_links_each_folder_and_names_a_missing_id(tmp_path: Path) -> None:
    splits = {
        "deepcrack": {"train": [f"d{i}" for i in range(6)], "val": ["dv0", "dv1"]},
        "crackforest": {"train": ["c0", "c1"], "val": ["cv0"]},
    }
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps(splits))
    datasets = tmp_path / "datasets"
    _dataset(datasets / "deepcrack" / "train", splits["deepcrack"]["train"] + splits["deepcrack"]["val"])
    _dataset(datasets / "crackforest", ["c0", "c1", "cv0", "test0"])
    proxy = px.Proxy(
        champion="x",
        parts={
            "feedback": px.Part("deepcrack", "train", n=4),
            "eval": px.Part("deepcrack", "val"),
            "base-train": px.Part("crackforest", "train"),
            "base-eval": px.Part("crackforest", "val"),
        },
    )
    folders = px.lay_out(datasets, split_file, tmp_path / "out", proxy)
    stems = {k: sorted(p.stem for p in (v / "masks").iterdir()) for k, v in folders.items()}
    assert stems["feedback"] == px.sample_ids(splits["deepcrack"]["train"], 4)
    assert stems["eval"] == ["dv0", "dv1"] and stems["base-eval"] == ["cv0"]
    assert not any("test0" in v for v in stems.values())
    assert all(
        (v / "images").is_dir() and len(list((v / "images").iterdir())) == len(stems[k])
        for k, v in folders.items()
    )
    (datasets / "crackforest" / "masks" / "cv0.png").unlink()
    (datasets / "crackforest" / "images" / "cv0.png").unlink()
    with pytest.raises(ValueError, match=r"\[crackforest\]\[val\] not found: \['cv0'\]"):
        px.lay_out(datasets, split_file, tmp_path / "out", proxy)


@pytest.mark.parametrize(
    ("name", "first"), [("no-crackforest", "crackforest"), ("no-deepcrack", "deepcrack/train")]
)
def test_main_takes_the_proxy_by_name_and_exits_2_on_missing_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, first: str
) -> None:
    # Each proxy lays out its feedback first: the missing folder named is that proxy's feedback dataset.
    code = px.main(["--proxy", name, "--datasets", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert code == 2 and f"none/{first} not found" in capsys.readouterr().err


def test_main_refuses_an_unknown_proxy() -> None:
    with pytest.raises(SystemExit):
        px.main(["--proxy", "no-such"])
