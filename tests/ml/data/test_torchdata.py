import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from ml.data.datasets import discover
from ml.data.torchdata import SegmentationDataset


@pytest.fixture
def dataset_dir(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255
    rgb[1, 2] = (0, 51, 102)
    Image.fromarray(rgb).save(tmp_path / "images" / "x.png")
    mask = np.zeros((4, 5), np.uint8)
    mask[1, 2] = 1  # a 0/1 mask
    Image.fromarray(mask).save(tmp_path / "masks" / "x.png")
    return tmp_path


def test_sample_types_shapes_and_values(dataset_dir):
    ds = SegmentationDataset(discover(dataset_dir))
    assert len(ds) == 1
    image, mask = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 4, 5)
    assert mask.dtype == torch.float32 and mask.shape == (1, 4, 5)
    assert type(image) is torch.Tensor and type(mask) is torch.Tensor
    assert torch.equal(image[:, 1, 2], torch.tensor([0.0, 0.2, 0.4]))
    assert torch.equal(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    expected = torch.zeros(1, 4, 5)
    expected[0, 1, 2] = 1
    assert torch.equal(mask, expected)


def test_joint_transform_is_applied_to_both(dataset_dir):
    ds = SegmentationDataset(discover(dataset_dir), transform=v2.RandomHorizontalFlip(p=1.0))
    image, mask = ds[0]
    assert mask[0, 1, 2] == 1 and mask.sum() == 1 and mask[0, 1, 2] == mask[0, 1, 4 - 2]
    assert torch.equal(image[:, 1, 2], torch.tensor([0.0, 0.2, 0.4]))
    flipped = SegmentationDataset(discover(dataset_dir), transform=v2.RandomVerticalFlip(p=1.0))[0][1]
    assert flipped[0, 2, 2] == 1 and flipped.sum() == 1


def test_cache_keeps_decoded_arrays(dataset_dir):
    ds = SegmentationDataset(discover(dataset_dir), cache=True)
    first = ds[0]
    (dataset_dir / "images" / "x.png").unlink()
    second = ds[0]
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    uncached = SegmentationDataset(discover(dataset_dir.parent / dataset_dir.name, None))
    with pytest.raises(ValueError):
        uncached[0]


def test_size_mismatch_is_a_clear_error(dataset_dir):
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(dataset_dir / "masks" / "x.png")
    with pytest.raises(ValueError, match="image is 5x4 but mask is 3x3; run check_integrity"):
        SegmentationDataset(discover(dataset_dir))[0]


def test_works_with_a_dataloader(dataset_dir):
    loader = torch.utils.data.DataLoader(SegmentationDataset(discover(dataset_dir)), batch_size=2)
    images, masks = next(iter(loader))
    assert images.shape == (1, 3, 4, 5) and masks.shape == (1, 1, 4, 5)
