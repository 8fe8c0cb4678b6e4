"""The images app's cache: float16 rows; the trained views encoded in float32, the searched ones in mixed precision
where the CPU computes it natively."""

import json

import torch
from tests.apps.conftest import write_image

from simtune.apps.images.data.dataset import ImageRecord
from simtune.apps.images.data.samples import MIRROR, ORIGINAL, ImageSamples
from simtune.apps.images.run.features import (
    SEARCHED_PRECISION,
    STORE_PREFIX,
    TRAINED_PRECISION,
    BackboneFeatures,
    cache_config,
)
from simtune.encoding import precision as precision_module
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.train.cache.encode_or_load import entry_fingerprint
from simtune.train.cache.fingerprint import describe_mismatch


def test_the_app_stores_float16_rows_and_its_fingerprint_names_the_precision_the_cpu_computes(tmp_path, monkeypatch):
    assert (cache_config(tmp_path, workers=0).dtype, cache_config(tmp_path, workers=0).precision) == (
        "float16",
        TRAINED_PRECISION,
    )
    config = cache_config(tmp_path, workers=0, precision=SEARCHED_PRECISION)
    records = [ImageRecord(i, str(write_image(tmp_path / f"{i}.jpg", i)), i, f"c{i}", None, "train") for i in range(3)]
    encoders = {"lite0": EfficientNetLiteEncoder("lite0")}
    samples = ImageSamples(records)
    monkeypatch.setattr(precision_module, "cpu_has_native_bfloat16", lambda: True)
    native = entry_fingerprint(encoders, samples, config, torch.device("cpu"))
    monkeypatch.setattr(precision_module, "cpu_has_native_bfloat16", lambda: False)
    emulated = entry_fingerprint(encoders, samples, config, torch.device("cpu"))
    assert describe_mismatch(emulated, native) == "precision"  # a bfloat16 entry is never read as a float32 one

    features = BackboneFeatures(encoders, records, tmp_path / "cache", workers=0, device="cpu").prepare()
    assert features.split_outputs(samples)["lite0"].dtype == torch.float16
    assert features.backbone_outputs(records).dtype == torch.float16  # heads take them to float32 a chunk at a time
    chunks = (tmp_path / "cache").glob("images_original-*/chunks/*.json")
    assert {json.loads(chunk.read_text())["precision"] for chunk in chunks} == {"float32"}  # no native bfloat16


def precisions_stored(cache_dir, view):
    chunks = cache_dir.glob(f"{STORE_PREFIX}{view}-*/chunks/*.json")
    return {json.loads(chunk.read_text())["precision"] for chunk in chunks}


def test_trained_views_are_encoded_in_float32_and_searched_views_in_bfloat16_where_the_cpu_has_it(
    tmp_path, monkeypatch
):
    """Heads trained on bfloat16-encoded features scored lower on the cars validation classes; search is unmoved."""
    monkeypatch.setattr(precision_module, "cpu_has_native_bfloat16", lambda: True)
    records = [ImageRecord(i, str(write_image(tmp_path / f"{i}.jpg", i)), i, f"c{i}", None, "train") for i in range(3)]
    encoders = {"lite0": EfficientNetLiteEncoder("lite0")}
    views = (ORIGINAL, MIRROR)
    BackboneFeatures(encoders, records, tmp_path / "cache", views=views, workers=0, device="cpu").prepare()
    assert precisions_stored(tmp_path / "cache", ORIGINAL) == {"float32"}
    assert precisions_stored(tmp_path / "cache", MIRROR) == {"bfloat16"}

    # a run that trains on mirror images too keeps them in float32, in entries of their own
    BackboneFeatures(
        encoders, records, tmp_path / "mirrored", views=views, workers=0, device="cpu", trained_views=views
    ).prepare()
    assert precisions_stored(tmp_path / "mirrored", MIRROR) == {"float32"}
