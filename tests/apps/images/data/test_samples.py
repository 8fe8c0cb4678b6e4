import numpy as np
import pytest
from PIL import Image
from tests.apps.conftest import write_image

from simtune.apps.images.data.dataset import ImageRecord
from simtune.apps.images.data.samples import ImageSamples


def _records(tmp_path):
    return [
        ImageRecord(i, str(write_image(tmp_path / f"{i}.jpg", i)), c, f"class {c}", None, "train")
        for i, c in enumerate([7, 7, 9])
    ]


def test_samples_are_paths_with_mapped_classes(tmp_path):
    records = _records(tmp_path)
    samples = ImageSamples(records, class_map={7: 0, 9: 1})
    assert len(samples) == 3 and samples.groups == [0, 0, 1]
    assert samples[2].obj == records[2].path and samples[2].group == 1


def test_mirrored_samples_follow_the_originals_as_mirror_images(tmp_path):
    records = _records(tmp_path)
    samples = ImageSamples(records, views=("original", "mirror"))
    assert len(samples) == 6 and samples.groups == [7, 7, 9, 7, 7, 9]
    mirrored = samples[4]
    original = np.asarray(Image.open(records[1].path).convert("RGB"))
    assert isinstance(mirrored.obj, Image.Image) and mirrored.group == 7
    assert np.array_equal(np.asarray(mirrored.obj), original[:, ::-1])
    assert len({samples.cache_key(i) for i in range(6)}) == 6
    only_mirrors = ImageSamples(records, views=("mirror",))
    assert [only_mirrors.cache_key(i) for i in range(3)] == [samples.cache_key(i) for i in range(3, 6)]


def test_no_records_or_an_unknown_view_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no records"):
        ImageSamples([])
    with pytest.raises(ValueError, match="views must name"):
        ImageSamples(_records(tmp_path), views=("flipped",))
