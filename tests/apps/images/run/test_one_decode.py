"""One decode per view pair: a photo and its mirror image are encoded from one reading of the file, into the
same cache entries (and the same rows) as when each view decoded the file itself."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simtune.apps.images.data.dataset import ImageRecord
from simtune.apps.images.data.samples import MIRROR, ORIGINAL, ImageSamples
from simtune.apps.images.run.features import (
    SEARCHED_PRECISION,
    STORE_PREFIX,
    TRAINED_PRECISION,
    BackboneFeatures,
    cache_config,
)
from simtune.encoding import precision_name
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.train import encode_or_load


@pytest.fixture(scope="module")
def car_records(cars_data: Path) -> list[ImageRecord]:
    """Six car photos of six classes, a greyscale one among them (its RGB conversion is shared too)."""
    folders = sorted((cars_data / "images").iterdir())
    photos = [sorted(folder.glob("*.jpg"))[0] for folder in folders[::35][:5]]
    for photo in sorted((cars_data / "images").glob("*/*.jpg")):
        with Image.open(photo) as image:
            if image.mode == "L":
                photos.append(photo)
                break
    assert len(photos) == 6, "the cars set holds a greyscale photo"
    return [ImageRecord(i, str(p), i, f"class {i}", None, "train") for i, p in enumerate(photos)]


def test_the_mirror_from_one_decode_equals_the_mirror_of_a_separate_decode(car_records):
    samples = ImageSamples(car_records, views=(ORIGINAL, MIRROR))
    collate = EfficientNetLiteEncoder("lite0").get_collate_fn()
    count = len(car_records)
    for position in range(count):
        original, mirror = samples.record_views(position)
        alone_original, alone_mirror = samples[position], samples[position + count]
        assert (original.group, mirror.group) == (alone_original.group, alone_mirror.group) == (position, position)
        assert np.array_equal(np.asarray(mirror.obj), np.asarray(alone_mirror.obj))
        assert not np.array_equal(np.asarray(mirror.obj), np.asarray(original.obj))
        # what the encoder receives: the decoded original as the file path gives it, the mirror as before
        assert torch.equal(collate([original.obj]), collate([alone_original.obj]))
        assert torch.equal(collate([mirror.obj]), collate([alone_mirror.obj]))


@pytest.fixture
def opened_files(monkeypatch) -> Counter:
    """How many times each file is opened as an image (decoding in this process: ``workers=0``)."""
    opened: Counter = Counter()
    real_open = Image.open

    def counting_open(path, *args, **kwargs):
        opened[str(path)] += 1
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return opened


def test_the_cache_fill_opens_each_file_once_per_pair_and_stores_what_separate_passes_store(
    tmp_path, car_records, opened_files
):
    encoder = EfficientNetLiteEncoder("lite0")
    views = (ORIGINAL, MIRROR)
    features = BackboneFeatures({"lite0": encoder}, car_records, tmp_path / "pair", views=views, workers=0)
    features.prepare()
    assert opened_files == Counter({record.path: 1 for record in car_records})

    for view in views:  # one entry per view, as encoding each view alone (in its own precision) writes it
        precision = TRAINED_PRECISION if view == ORIGINAL else SEARCHED_PRECISION
        alone = encode_or_load(
            {"lite0": encoder},
            ImageSamples(car_records, views=(view,)),
            cache_config(tmp_path / "separate", workers=0, precision=precision),
            name=STORE_PREFIX + view,
            progress=False,
        )
        stored = features.split_outputs(ImageSamples(car_records, views=(view,)))["lite0"].float()
        expected = alone.embeddings["lite0"][0].float()
        if precision_name("cpu", precision) == "float32":
            # the same rows, up to one float16 step: the passes batch the rows differently
            torch.testing.assert_close(stored, expected, rtol=2e-3, atol=2e-3)
        else:  # bfloat16 rounds differently in other batch shapes
            assert torch.nn.functional.cosine_similarity(stored, expected).min() > 0.999
    assert features.backbone_outputs(car_records, mirrored=True).shape == (len(car_records), 2 * 1280)

    opened_files.clear()
    BackboneFeatures({"lite0": encoder}, car_records, tmp_path / "pair", views=views, workers=0).prepare()
    assert not opened_files  # both entries read back, nothing decoded

    for entry in (tmp_path / "pair").glob(STORE_PREFIX + MIRROR + "-*"):
        for chunk in (entry / "chunks").iterdir():
            chunk.unlink()  # the mirror entry lost: encoded again, the original entry kept
    again = BackboneFeatures({"lite0": encoder}, car_records, tmp_path / "pair", views=views, workers=0).prepare()
    assert opened_files == Counter({record.path: 1 for record in car_records})
    for view in views:
        samples = ImageSamples(car_records, views=(view,))
        torch.testing.assert_close(
            again.split_outputs(samples)["lite0"].float(),
            features.split_outputs(samples)["lite0"].float(),
            rtol=2e-3,
            atol=2e-3,
        )
