import numpy as np
import pytest

from ml.data.datasets import check_integrity, discover
from ml.data.imageio import read_image, read_mask
from ml.data.synthetic import SynthConfig, generate, sample_seed, synthesize

SIZE = (96, 128)


def test_sample_types_and_shapes():
    image, mask = synthesize(sample_seed(0, 0), SIZE)
    assert image.dtype == np.uint8 and image.shape == (*SIZE, 3)
    assert mask.dtype == bool and mask.shape == SIZE


def test_deterministic_per_seed_and_index():
    a = synthesize(sample_seed(3, 1), SIZE)
    b = synthesize(sample_seed(3, 1), SIZE)
    c = synthesize(sample_seed(3, 2), SIZE)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_crack_fraction_stays_in_the_configured_range():
    fractions = np.array([synthesize(sample_seed(0, i), SIZE)[1].mean() for i in range(12)])
    assert np.all(fractions >= 0.01) and np.all(fractions <= 0.05)
    config = SynthConfig(min_fraction=0.002, max_fraction=0.01)
    small = np.array([synthesize(sample_seed(0, i), SIZE, config)[1].mean() for i in range(6)])
    assert np.all(small <= 0.01) and np.all(small > 0)


def test_cracks_are_darker_than_their_surroundings():
    # The mask marks what is visibly a crack: its pixels are darker than the pavement next to them.
    for i in range(6):
        image, mask = synthesize(sample_seed(1, i), SIZE)
        gray = image.astype(float).mean(axis=2)
        from scipy import ndimage as ndi

        ring = ndi.binary_dilation(mask, iterations=6) & ~ndi.binary_dilation(mask, iterations=2)
        assert gray[mask].mean() < gray[ring].mean() - 5


def test_cracks_are_thin():
    from skimage.morphology import skeletonize

    widths = []
    for i in range(6):
        mask = synthesize(sample_seed(2, i), (160, 240))[1]
        widths.append(mask.sum() / skeletonize(mask).sum())
    assert 1.5 < float(np.mean(widths)) < 7.0


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="at least 32x32"):
        synthesize(0, (16, 64))
    with pytest.raises(ValueError, match="min_fraction"):
        synthesize(0, SIZE, SynthConfig(min_fraction=0.1, max_fraction=0.05))
    with pytest.raises(ValueError, match="crack_count_probs must be non-negative and sum to 1"):
        synthesize(0, SIZE, SynthConfig(crack_count_probs=(0.5, 0.2)))
    with pytest.raises(ValueError, match="n must be at least 1"):
        generate(0, tmp_path)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        generate(1, tmp_path, workers=0)


def test_generate_writes_a_dataset(tmp_path):
    ids = generate(3, tmp_path / "syn", size=SIZE, seed=5)
    assert ids == ["synth_00000", "synth_00001", "synth_00002"]
    pairs = discover(tmp_path / "syn")
    assert [p.id for p in pairs] == ids
    report = check_integrity(pairs)
    assert report.sizes == {SIZE: 3}
    image, mask = synthesize(sample_seed(5, 1), SIZE)
    assert np.array_equal(read_image(pairs[1].image), image)
    assert np.array_equal(read_mask(pairs[1].mask), mask)
    # Sample i depends neither on how many samples were asked for nor on how many processes made them.
    generate(2, tmp_path / "again", size=SIZE, seed=5, workers=2)
    assert (tmp_path / "again/images/synth_00001.png").read_bytes() == pairs[1].image.read_bytes()
    assert (tmp_path / "again/masks/synth_00000.png").read_bytes() == pairs[0].mask.read_bytes()


def test_hard_negative_mode_makes_crack_free_samples_with_distractors():
    from ml.data.synthetic import SynthConfig, sample_seed

    config = SynthConfig.hard_negatives()
    masks = [synthesize(sample_seed(3, i), (96, 128), config)[1] for i in range(40)]
    empty = sum(not m.any() for m in masks)
    # crack_free_prob 0.3 of 40 samples: a binomial with mean 12; far from 0 and from 40.
    assert 4 <= empty <= 22
    # The default config never makes an empty sample (the starter's recipe is unchanged).
    assert all(synthesize(sample_seed(3, i), (96, 128))[1].any() for i in range(10))


def test_hard_negatives_draw_the_new_distractors():
    """Kerbs, manholes and tyre marks change the picture but never the mask."""
    import numpy as np

    from ml.data import synth_texture as tex

    rng = np.random.default_rng(0)
    base = np.full((96, 128, 3), 128.0, np.float32)
    for draw in (tex._kerb, tex._manhole, tex._tyre_marks):
        out = draw(np.random.default_rng(int(rng.integers(1 << 30))), base.copy(), (96, 128))
        assert out.shape == base.shape
        assert np.abs(out - base).max() > 10, draw.__name__
