"""The done-when check: EfficientNet-Lite0 + SkipConnectionHead embeds real car images, saves, and a new
process that loads it gets identical embeddings."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from simtune.models import SimilarityModel
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.models.heads import SkipConnectionHead

RELOAD = """
import sys, numpy as np
from simtune.models import SimilarityModel
model = SimilarityModel.load(sys.argv[1])
np.save(sys.argv[2], model.encode(sys.argv[3:], batch_size=2))
"""


@pytest.mark.slow
def test_lite0_skip_connection_embeddings_survive_save_and_reload_in_a_new_process(car_images, tmp_path):
    torch.manual_seed(0)
    encoder = EfficientNetLiteEncoder("lite0")
    model = SimilarityModel(encoder, SkipConnectionHead(encoder.embedding_size, normalize=True))
    with torch.no_grad():
        model.head.gates.fill_(0.0)  # a head that visibly transforms, as after training
    car_images = car_images[:4]
    embeddings = model.encode(car_images, batch_size=2)
    assert embeddings.shape == (len(car_images), 1280)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    similarities = embeddings @ embeddings.T
    assert similarities[~np.eye(len(car_images), dtype=bool)].max() < 0.999  # distinct images, distinct vectors
    model.save(tmp_path / "model")

    command = [sys.executable, "-c", RELOAD, str(tmp_path / "model"), str(tmp_path / "reloaded.npy")]
    result = subprocess.run([*command, *map(str, car_images)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "reloaded.npy"), embeddings)
    assert SimilarityModel.load(tmp_path / "model").fingerprint() == model.fingerprint()
