import numpy as np
import pytest
from PIL import Image

from simtune.apps.images.data.dataset import CarRecord
from simtune.apps.images.data.samples import CarSamples
from tests.apps.images.conftest import write_image


def _records(tmp_path):
    return [
        CarRecord(i, str(write_image(tmp_path / f"{i}.jpg", i)), c, f"Make{c} X 2012", f"Make{c}", "X", 2012, None, "train")
        for i, c in enumerate([7, 7, 9])
    ]


def test_samples_are_paths_with_mapped_classes(tmp_path):
    records = _records(tmp_path)
    samples = CarSamples(records, class_map={7: 0, 9: 1})
    assert len(samples) == 3 and samples.groups == [0, 0, 1]
    assert samples[2].obj == records[2].path and samples[2].group == 1


def test_mirrored_samples_follow_the_originals_as_mirror_images(tmp_path):
    records = _records(tmp_path)
    samples = CarSamples(records, mirrored=True)
    assert len(samples) == 6 and samples.groups == [7, 7, 9, 7, 7, 9]
    mirrored = samples[4]
    original = np.asarray(Image.open(records[1].path).convert("RGB"))
    assert isinstance(mirrored.obj, Image.Image) and mirrored.group == 7
    assert np.array_equal(np.asarray(mirrored.obj), original[:, ::-1])
    assert len({samples.cache_key(i) for i in range(6)}) == 6


def test_no_records_is_an_error():
    with pytest.raises(ValueError, match="no records"):
        CarSamples([])
