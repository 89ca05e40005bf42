"""The feedback fine-tuning recipe: BN statistics frozen, replay at its ratio, steps scaled, native-scale crops."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ml.checkpoint import ModelConfig, build_model, load_model, read_config, save_model
from ml.data.datasets import Pair, discover
from ml.evaluate import normalise
from ml.finetune import CropSource, FinetuneParams, batches, finetune, freeze_batchnorm

TINY = {"batch_size": 4, "crop_size": 32, "min_steps": 3, "max_steps": 3, "threads": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(base_width=4, depth=2, threshold=0.7, version="3")
    return save_model(build_model(config), config, tmp_path_factory.mktemp("parent") / "model")


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Pair], list[Pair]]:
    from ml.data import synthetic

    root = tmp_path_factory.mktemp("ft-data")
    synthetic.generate(4, root / "feedback", size=(48, 80), seed=5)
    synthetic.generate(6, root / "base", size=(64, 64), seed=6)
    return discover(root / "feedback"), discover(root / "base")


def _bn_stats(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running_" in k or "num_batches" in k}


@pytest.mark.parametrize("freeze", [True, False])
def test_bn_statistics_stay_frozen_only_when_asked(
    freeze: bool, parent: Path, two_sets: tuple[list[Pair], list[Pair]], tmp_path: Path
) -> None:
    feedback, base = two_sets
    before = load_model(parent).module
    result = finetune(
        FinetuneParams(**TINY, freeze_bn=freeze, lr=1e-2),
        init_from=parent,
        feedback=feedback,
        base=base,
        out_dir=tmp_path,
        tracking_uri="none",
    )
    after = load_model(result.model_dir).module
    stats_before, stats_after = _bn_stats(before), _bn_stats(after)
    assert stats_before, "the model has batch-norm layers"
    same = all(torch.equal(stats_before[k], stats_after[k]) for k in stats_before)
    assert same is freeze
    # The network did learn: some trainable weight moved.
    weights = [k for k in before.state_dict() if k.endswith("weight") and "bn" not in k.lower()]
    assert any(not torch.equal(before.state_dict()[k], after.state_dict()[k]) for k in weights)


def test_freeze_affine_stops_bn_weights_too(parent: Path) -> None:
    module = load_model(parent).module
    module.train()
    n = freeze_batchnorm(module, affine=True)
    bns = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert n == len(bns) > 0
    assert all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())


def test_output_keeps_parent_architecture_threshold_and_lineage(
    parent: Path, two_sets: tuple[list[Pair], list[Pair]], tmp_path: Path
) -> None:
    feedback, _ = two_sets
    result = finetune(
        FinetuneParams(**TINY, threshold="parent"),
        init_from=parent,
        feedback=feedback,
        out_dir=tmp_path,
        tracking_uri="none",
    )
    config = read_config(result.model_dir)
    assert (config.base_width, config.depth, config.threshold) == (4, 2, 0.7)
    assert config.parent_version == "3" and config.version is None
    assert result.steps == 3 and result.n_replay_images == 0
    assert config.metrics["finetune_feedback_images"] == len(feedback)


@pytest.mark.parametrize(
    ("ratio", "batch", "expected"), [(0.25, 8, 2), (0.5, 8, 4), (0.0, 8, 0), (0.9, 4, 3), (0.05, 8, 1)]
)
def test_replay_ratio_sets_base_crops_per_batch(
    ratio: float, batch: int, expected: int, two_sets: tuple[list[Pair], list[Pair]]
) -> None:
    feedback, base = two_sets
    params = FinetuneParams(replay_ratio=ratio, batch_size=batch, crop_size=32)
    n_replay = params.replay_per_batch(has_base=True)
    assert n_replay == expected
    rng = np.random.default_rng(0)
    fb, bs = CropSource(feedback, 32, 0.5, rng), CropSource(base, 32, 0.5, rng)
    for images, masks, sources in batches(fb, bs, n_replay, batch, steps=5):
        assert images.shape == (batch, 3, 32, 32) and masks.shape == (batch, 1, 32, 32)
        assert Counter(sources) == Counter({"base": expected, "feedback": batch - expected}) - Counter()
    assert params.replay_per_batch(has_base=False) == 0


def test_every_feedback_photo_is_used_equally(two_sets: tuple[list[Pair], list[Pair]]) -> None:
    feedback, _ = two_sets
    source = CropSource(feedback, 32, 0.5, np.random.default_rng(1))
    for _ in range(3 * len(feedback)):
        source.sample()
    assert Counter(source.drawn) == dict.fromkeys(range(len(feedback)), 3)


@pytest.mark.parametrize(("n", "expected"), [(1, 20), (10, 30), (40, 120), (500, 200)])
def test_steps_scale_with_feedback_within_budget(n: int, expected: int) -> None:
    assert FinetuneParams(steps_per_image=3, min_steps=20, max_steps=200).steps_for(n) == expected


def test_crops_are_native_scale_so_a_1px_crack_stays_1px(tmp_path: Path) -> None:
    h, w = 300, 500
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[:, 321] = 255  # one vertical 1-px crack
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "a.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    source = CropSource(discover(tmp_path), 64, 1.0, np.random.default_rng(2))
    for _ in range(20):
        crop_image, crop_mask = source.sample()
        assert crop_image.shape == (64, 64, 3)
        # After a rot90 the line is horizontal: either every row or every column holds exactly one crack pixel.
        rows, cols = crop_mask.sum(axis=1), crop_mask.sum(axis=0)
        assert (rows == 1).all() or (cols == 1).all()


def test_small_photos_are_padded_not_resized(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.full((20, 30, 3), 100, np.uint8)).save(tmp_path / "images" / "s.png")
    mask = np.zeros((20, 30), np.uint8)
    mask[5, 3:13] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "s.png")
    source = CropSource(discover(tmp_path), 32, 1.0, np.random.default_rng(3))
    _, crop_mask = source.sample()
    assert crop_mask.shape == (32, 32) and crop_mask.sum() == 10


def test_params_file_section_and_bad_keys(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"train": {"epochs": 1}, "finetune": {"lr": 5e-5}}))
    assert FinetuneParams.from_yaml(path).lr == 5e-5
    path.write_text(yaml.safe_dump({"train": {"epochs": 1}}))
    assert FinetuneParams.from_yaml(path) == FinetuneParams()
    path.write_text(yaml.safe_dump({"finetune": {"lrr": 1}}))
    with pytest.raises(ValueError, match="lrr"):
        FinetuneParams.from_yaml(path)


def test_no_feedback_is_a_clear_error(parent: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one labelled feedback"):
        finetune(FinetuneParams(**TINY), init_from=parent, feedback=[], out_dir=tmp_path, tracking_uri="none")


def test_the_products_recipe_is_the_default_recipe() -> None:
    """A Job without CRACKSEG_RETRAIN_PARAMS runs exactly what `crackseg up` and the bench ship."""
    shipped = Path(__file__).resolve().parents[2] / "services" / "up" / "retrain-params.yaml"
    assert FinetuneParams.from_yaml(shipped) == FinetuneParams()


def test_threshold_is_repicked_on_training_crops(
    parent: Path, two_sets: tuple[list[Pair], list[Pair]], tmp_path: Path
) -> None:
    from ml.metrics import ThresholdCurve

    feedback, base = two_sets
    params = FinetuneParams(**TINY, threshold_crops=8)
    result = finetune(
        params, init_from=parent, feedback=feedback, base=base, out_dir=tmp_path, tracking_uri="none"
    )
    config = read_config(result.model_dir)
    assert config.metrics["finetune_parent_threshold"] == 0.7
    assert config.threshold == result.threshold
    # The same crops (same seed, same draws) scored by hand give the same best threshold.
    model = load_model(result.model_dir).module
    rng = np.random.default_rng(params.seed)
    fb, bs = (
        CropSource(feedback, 32, params.crack_crop_prob, rng),
        CropSource(base, 32, params.crack_crop_prob, rng),
    )
    for _ in batches(fb, bs, params.replay_per_batch(True), params.batch_size, result.steps):
        pass
    curve = ThresholdCurve()
    n_replay = params.replay_per_batch(True)
    with torch.no_grad():
        for _ in range(2):
            crops = [(bs if j < n_replay else fb).sample(augment=False) for j in range(4)]
            images = torch.from_numpy(np.stack([c[0] for c in crops])).permute(0, 3, 1, 2).float() / 255.0
            target = torch.from_numpy(np.stack([c[1] for c in crops])[:, None])
            curve.update(torch.sigmoid(model(normalise(images, config.mean, config.std))), target)
    assert curve.ods().threshold == pytest.approx(config.threshold)


def test_uniform_crops_are_plain_sub_blocks(tmp_path: Path) -> None:
    h, w = 90, 130
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "g.png")
    Image.fromarray(np.zeros((h, w), np.uint8)).save(tmp_path / "masks" / "g.png")
    source = CropSource(discover(tmp_path), 32, 1.0, np.random.default_rng(4))
    for _ in range(5):
        crop, _ = source.sample(augment=False)
        top, left = int(crop[0, 0, 0]), int(crop[0, 0, 1])
        assert np.array_equal(crop, image[top : top + 32, left : left + 32])


def test_base_holdout_threshold_comes_from_base_photos_kept_out_of_the_replay(
    parent: Path, two_sets: tuple[list[Pair], list[Pair]], tmp_path: Path
) -> None:
    from ml.data.torchdata import SegmentationDataset
    from ml.evaluate import sweep

    feedback, base = two_sets  # 6 base photos: 0.34 of them (2) are held out
    params = FinetuneParams(**TINY, threshold="base_holdout", threshold_holdout_fraction=0.34)
    result = finetune(
        params, init_from=parent, feedback=feedback, base=base, out_dir=tmp_path, tracking_uri="none"
    )
    config = read_config(result.model_dir)
    assert result.n_replay_images == 4 and config.metrics["finetune_threshold_photos"] == 2
    held = [base[int(i)] for i in np.random.default_rng(params.seed + 7).permutation(len(base))[:2]]
    model = load_model(result.model_dir).module
    ods = sweep(model, SegmentationDataset(held), mean=config.mean, std=config.std).curve.ods()
    assert config.threshold == pytest.approx(ods.threshold)
