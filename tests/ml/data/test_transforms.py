import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from ml.data.transforms import RandomRot90, ScaleJitterCrop, eval_transform, train_transform

torch.set_num_threads(1)


def block_mask(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A random mask of 4x4 blocks (so nearest and bilinear resizing agree away from block edges)."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 2, (1, (h + 3) // 4, (w + 3) // 4), generator=g, dtype=torch.uint8)
    return blocks.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)[:, :h, :w].contiguous()


def coordinate_image(h: int, w: int) -> torch.Tensor:
    """Channel 0 = row, channel 1 = column: every pixel says where it came from."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([yy, xx, torch.zeros_like(yy)]).to(torch.uint8)


def test_flips_and_rotations_keep_every_pixel_aligned():
    h, w = 24, 24
    mask = block_mask(h, w)
    image = coordinate_image(h, w)
    transform = train_transform(crop_size=(h, w), scale=(1.0, 1.0), color=False)
    seen = set()
    for seed in range(60):
        torch.manual_seed(seed)
        out_image, out_mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        assert isinstance(out_image, tv_tensors.Image) and isinstance(out_mask, tv_tensors.Mask)
        rows, cols = out_image[0].long(), out_image[1].long()
        # The mask at every output pixel is the input mask at the pixel the image says it came from.
        assert torch.equal(out_mask[0], mask[0][rows, cols])
        seen.add((int(rows[0, 0]), int(cols[0, 0])))
    # All four corners of the source come to the top-left at some point: the flips and rotations do happen.
    assert seen == {(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)}


def test_native_scale_crop_keeps_the_mask_aligned_and_binary():
    h, w = 64, 96
    mask = block_mask(h, w, seed=1)
    image = (mask * 255).repeat(3, 1, 1)
    transform = train_transform(crop_size=(32, 32), scale=(0.8, 1.25), color=False)
    pure_total = 0
    for seed in range(100):
        torch.manual_seed(seed)
        out_image, out_mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        assert out_image.shape == (3, 32, 32) and out_mask.shape == (1, 32, 32)
        assert set(out_mask.unique().tolist()) <= {0, 1}
        # Where the resampled image is pure white/black every source pixel it used agrees, and so must the mask.
        white, black = out_image[0] == 255, out_image[0] == 0
        assert torch.all(out_mask[0][white] == 1)
        assert torch.all(out_mask[0][black] == 0)
        pure_total += int(white.sum() + black.sum())
    assert pure_total > 0.5 * 100 * 32 * 32


def _line_mask(h: int, w: int) -> torch.Tensor:
    """A 1-px wide, 8-connected diagonal-ish line across the whole image (a hairline crack)."""
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    for x in range(w):
        mask[0, round(h * 0.2 + 0.37 * x) % h, x] = 1
    return mask


@pytest.mark.parametrize("scale", [0.8, 0.9, 1.0, 1.1, 1.25])
def test_a_one_pixel_line_stays_connected_at_every_scale(scale):
    from scipy import ndimage as ndi

    h, w = 96, 96
    mask = _line_mask(h, w)
    image = torch.zeros(3, h, w, dtype=torch.uint8)
    crop = ScaleJitterCrop((64, 64), scale=(scale, scale))
    for seed in range(20):
        torch.manual_seed(seed)
        _, out = crop(tv_tensors.Image(image), tv_tensors.Mask(mask))
        line = out[0].numpy().astype(bool)
        if line.sum() == 0:
            continue  # the window missed the line
        _, n = ndi.label(line, structure=np.ones((3, 3)))
        assert n == 1, f"seed {seed}: the line broke into {n} pieces at scale {scale}"
        # Every column the line crosses inside the window still has a crack pixel (no gaps).
        cols = np.nonzero(line.any(0))[0]
        assert cols.max() - cols.min() + 1 == len(cols)


def test_nearest_neighbour_resizing_would_break_the_same_line():
    """The reason ScaleJitterCrop re-thresholds coverage: a nearest resize of the same line leaves gaps."""
    from torchvision.transforms import v2 as tv2

    mask = _line_mask(80, 80)
    shrunk = tv2.functional.resize(mask, [64, 64], interpolation=tv2.InterpolationMode.NEAREST)
    cols = shrunk[0].numpy().astype(bool).any(0)
    assert not cols.all()


def test_crops_larger_than_the_image_are_padded_not_rejected():
    image = tv_tensors.Image(coordinate_image(20, 30))
    mask = tv_tensors.Mask(block_mask(20, 30))
    out_image, out_mask = ScaleJitterCrop((48, 48), scale=(1.0, 1.0))(image, mask)
    assert out_image.shape == (3, 48, 48) and out_mask.shape == (1, 48, 48)


def test_colour_jitter_changes_the_image_but_never_the_mask():
    h = w = 16
    mask = block_mask(h, w, seed=2)
    image = torch.full((3, h, w), 120, dtype=torch.uint8)
    image[0] = 200
    dihedral = [torch.rot90(m, k, dims=(-2, -1)) for m in (mask, mask.flip(-1)) for k in range(4)]
    transform = train_transform(crop_size=(h, w), scale=(1.0, 1.0), color=True)
    changed = 0
    for seed in range(30):
        torch.manual_seed(seed)
        out_image, out_mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        assert any(torch.equal(out_mask, d) for d in dihedral)
        changed += int(not torch.equal(out_image, image))
    assert changed >= 25


def test_rot90_swaps_sides_of_non_square_inputs():
    image = tv_tensors.Image(coordinate_image(4, 6))
    transform = RandomRot90()
    shapes = set()
    for seed in range(20):
        torch.manual_seed(seed)
        shapes.add(tuple(transform(image).shape))
    assert shapes == {(3, 4, 6), (3, 6, 4)}


def test_eval_transform_is_identity():
    image, mask = tv_tensors.Image(coordinate_image(5, 7)), tv_tensors.Mask(block_mask(5, 7))
    out_image, out_mask = eval_transform()(image, mask)
    assert torch.equal(out_image, image) and torch.equal(out_mask, mask)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"crop_size": (0, 8)}, "crop_size"), ({"scale": (1.5, 0.5)}, "scale")]
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_transform(**kwargs)
