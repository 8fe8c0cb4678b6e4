"""The images app's cache: float16 rows, encoded in mixed precision where the CPU computes it natively."""

import json

import torch
from tests.apps.conftest import write_image

from simtune.apps.images.data.dataset import ImageRecord
from simtune.apps.images.data.samples import ImageSamples
from simtune.apps.images.run.features import BackboneFeatures, cache_config
from simtune.encoding import precision as precision_module
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.train.cache.encode_or_load import entry_fingerprint
from simtune.train.cache.fingerprint import describe_mismatch


def test_the_app_stores_float16_rows_and_its_fingerprint_names_the_precision_the_cpu_computes(tmp_path, monkeypatch):
    config = cache_config(tmp_path, workers=0)
    assert (config.dtype, config.precision) == ("float16", "auto")
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
