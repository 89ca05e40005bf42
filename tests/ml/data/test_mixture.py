import json
from pathlib import Path

import pytest

from ml.data import synthetic
from ml.data.mixture import MixtureSpec, Source, build_mixture, read_splits


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two tiny 'real' datasets (flat, and with a split.json of its own), a synthetic folder and a split file."""
    root = tmp_path_factory.mktemp("datasets")
    synthetic.generate(6, root / "alpha", size=(48, 48), seed=1)
    synthetic.generate(4, root / "beta", size=(48, 48), seed=2)
    # beta has a public test split of its own: the mixture must never read those ids unless the split file says so.
    (root / "beta" / "split.json").write_text(
        json.dumps({"train": ["synth_00000", "synth_00001", "synth_00002"], "test": ["synth_00003"]})
    )
    synth = tmp_path_factory.mktemp("synth")
    synthetic.generate(5, synth, size=(48, 48), seed=3)
    splits = root / "splits.json"
    splits.write_text(
        json.dumps(
            {
                "_comment": "notes are ignored",
                "alpha": {
                    "train": [f"synth_0000{i}" for i in range(4)],
                    "val": ["synth_00004", "synth_00005"],
                },
                "beta": {"train": ["synth_00000", "synth_00001"], "val": ["synth_00002"]},
            }
        )
    )
    return root, synth, splits


def _spec(splits: Path, **weights: float) -> MixtureSpec:
    return MixtureSpec(
        splits=str(splits),
        sources=[
            Source(name="alpha", path="alpha", weight=weights.get("alpha", 0.5)),
            Source(name="beta", path="beta", weight=weights.get("beta", 0.3)),
            Source(name="synthetic", synthetic=5, weight=weights.get("synthetic", 0.2)),
        ],
    )


def test_mixture_takes_ids_from_the_split_file_only(datasets) -> None:
    root, synth, splits = datasets
    mix = build_mixture(_spec(splits), root, synth)
    assert mix.counts == {
        "alpha": {"train": 4, "val": 2},
        "beta": {"train": 2, "val": 1},
        "synthetic": {"train": 5, "val": 0},
    }
    ids = {p.id for p in mix.train} | {p.id for p in mix.val}
    assert "beta/synth_00003" not in ids  # beta's public test id is never touched
    assert {p.id for p in mix.train}.isdisjoint({p.id for p in mix.val})
    assert all(p.id.split("/")[0] in {"alpha", "beta", "synthetic"} for p in mix.train)


def test_each_source_gets_its_weight_whatever_its_size(datasets) -> None:
    root, synth, splits = datasets
    mix = build_mixture(_spec(splits), root, synth)
    share: dict[str, float] = {}
    for pair, w in zip(mix.train, mix.weights, strict=True):
        share[pair.id.split("/")[0]] = share.get(pair.id.split("/")[0], 0.0) + w
    assert share == pytest.approx({"alpha": 0.5, "beta": 0.3, "synthetic": 0.2})


def test_split_ids_missing_on_disk_are_named(datasets, tmp_path: Path) -> None:
    root, synth, _ = datasets
    bad = tmp_path / "splits.json"
    bad.write_text(
        json.dumps({"alpha": {"train": ["nope_1"], "val": ["synth_00000"]}, "beta": {"train": [], "val": []}})
    )
    with pytest.raises(ValueError, match="nope_1"):
        build_mixture(_spec(bad), root, synth)


def test_a_real_source_without_a_validation_carve_out_is_refused(datasets, tmp_path: Path) -> None:
    root, synth, _ = datasets
    only_alpha = tmp_path / "splits.json"
    only_alpha.write_text(json.dumps({"alpha": {"train": ["synth_00000"], "val": ["synth_00001"]}}))
    with pytest.raises(ValueError, match="no entry for 'beta'"):
        build_mixture(_spec(only_alpha), root, synth)


def test_split_file_with_an_id_in_train_and_val_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"a": {"train": ["1", "2"], "val": ["2"]}}))
    with pytest.raises(ValueError, match="both train and val"):
        read_splits(f)


def test_missing_dataset_folder_says_how_to_fix_it(datasets, tmp_path: Path) -> None:
    _, synth, splits = datasets
    with pytest.raises(ValueError, match="CRACKSEG_DATASETS"):
        build_mixture(_spec(splits), tmp_path / "nowhere", synth)


def test_source_needs_exactly_one_kind() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Source(name="x", weight=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        Source(name="x", weight=1.0, path="a", synthetic=3)


def test_the_shipped_split_file_is_carved_from_training_data_only() -> None:
    import os

    from ml.data.mixture import DEFAULT_SPLITS

    splits = read_splits(DEFAULT_SPLITS)
    assert set(splits) == {"deepcrack", "crackforest"}
    cfd_split = Path(os.environ.get("CRACKSEG_DATASETS", "../shared/datasets")) / "crackforest" / "split.json"
    if not cfd_split.is_file():
        pytest.skip("CrackForest not available (set CRACKSEG_DATASETS)")
    public = json.loads(cfd_split.read_text())
    ours = set(splits["crackforest"]["train"]) | set(splits["crackforest"]["val"])
    assert ours == set(public["train"]) and ours.isdisjoint(public["test"])
