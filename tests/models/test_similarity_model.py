import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from toy_encoders import ToyEncoder

import simtune.models.similarity_model as similarity_model
from simtune.models import SimilarityModel
from simtune.models.heads import EmptyHead, LinearHead, SkipConnectionHead

IMAGES = [torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(5)]


def toy_model(seed: int = 0) -> SimilarityModel:
    torch.manual_seed(seed)
    encoder = ToyEncoder(size=4)
    return SimilarityModel(encoder, SkipConnectionHead(4, normalize=True)).eval()


def test_single_encoder_is_named_default():
    model = toy_model()
    assert list(model.encoders) == ["default"] and model.embedding_size == 4
    batch = model.get_collate_fn()(IMAGES)
    assert set(batch) == {"default"} and batch["default"].shape == (5, 3, 8, 8)
    assert model(batch).shape == (5, 4)


def test_several_encoders_are_concatenated_in_sorted_name_order():
    zebra, apple = ToyEncoder(size=2).eval(), ToyEncoder(size=3).eval()
    model = SimilarityModel({"zebra": zebra, "apple": apple}, EmptyHead(5))
    assert list(model.encoders) == ["apple", "zebra"]
    batch = model.get_collate_fn()(IMAGES)
    expected = torch.cat([apple(batch["apple"]), zebra(batch["zebra"])], dim=1)
    assert torch.equal(model.encoder_outputs(batch), expected)
    with pytest.raises(KeyError, match="zebra"):
        model.encoder_outputs({"apple": batch["apple"]})


def test_inconsistent_parts_are_rejected():
    with pytest.raises(ValueError, match="head expects 5-d input but the encoders output 4"):
        SimilarityModel(ToyEncoder(size=4), EmptyHead(5))
    with pytest.raises(ValueError, match="encoder name 'a/b'"):
        SimilarityModel({"a/b": ToyEncoder(size=4)}, EmptyHead(4))
    with pytest.raises(TypeError, match="not a simtune Encoder"):
        SimilarityModel({"x": torch.nn.Linear(4, 4)}, EmptyHead(4))
    with pytest.raises(TypeError, match="not a simtune EncoderHead"):
        SimilarityModel(ToyEncoder(size=4), torch.nn.Identity())


def test_encode_matches_forward_in_any_batch_size_and_restores_training_mode():
    model = toy_model().train()
    embeddings = model.encode(IMAGES, batch_size=2)
    assert isinstance(embeddings, np.ndarray) and embeddings.shape == (5, 4)
    assert model.head.training  # restored
    with torch.no_grad():
        expected = model.eval()(model.get_collate_fn()(IMAGES))
    tensor = model.encode(IMAGES, batch_size=5, to_numpy=False, progress=True)
    assert isinstance(tensor, torch.Tensor) and not tensor.requires_grad
    np.testing.assert_allclose(embeddings, expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(tensor.numpy(), expected.numpy(), atol=1e-6)
    assert model.encode([]).shape == (0, 4)
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(IMAGES, batch_size=0)


def test_save_load_round_trip_and_saving_over_an_existing_model(tmp_path):
    model = toy_model()
    toy_model(seed=1).save(tmp_path / "model")
    model.save(tmp_path / "model")  # over the first one
    loaded = SimilarityModel.load(tmp_path / "model")
    assert not loaded.training and loaded.fingerprint() == model.fingerprint()
    np.testing.assert_array_equal(loaded.encode(IMAGES), model.encode(IMAGES))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folders left


def test_a_crash_midway_through_saving_leaves_the_old_model(tmp_path, monkeypatch):
    old = toy_model(seed=1)
    old.save(tmp_path / "model")
    written = []

    def crash_on_head(module, folder):
        if folder.name == "head":
            raise OSError("disk full")
        written.append(folder)
        write_module(module, folder)

    write_module = similarity_model.write_module
    monkeypatch.setattr(similarity_model, "write_module", crash_on_head)
    with pytest.raises(OSError, match="disk full"):
        toy_model(seed=2).save(tmp_path / "model")
    assert written, "the crash should happen after part of the new model was written"
    assert SimilarityModel.load(tmp_path / "model").fingerprint() == old.fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


KILLED_SAVE = """
import os, signal, sys
import simtune.models.similarity_model as similarity_model
from simtune.models import SimilarityModel
from simtune.models.encoders import TorchvisionEncoder
from simtune.models.heads import LinearHead
write_module = similarity_model.write_module
def write_then_die(module, folder):
    write_module(module, folder)
    if folder.name == "head":
        os.kill(os.getpid(), signal.SIGKILL)
similarity_model.write_module = write_then_die
SimilarityModel(TorchvisionEncoder("mobilenet_v3_small", image_size=32), LinearHead(1024)).save(sys.argv[1])
"""


def test_a_save_killed_midway_leaves_the_old_model_and_the_next_save_cleans_up(tmp_path):
    toy_model(seed=1).save(tmp_path / "model")
    env = {**os.environ, "PYTHONPATH": str(Path(similarity_model.__file__).parents[2])}
    result = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(tmp_path / "model")], env=env, capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert [p.name.startswith(".model.staging-") for p in tmp_path.iterdir() if p.name != "model"] == [True]
    assert SimilarityModel.load(tmp_path / "model").fingerprint() == toy_model(seed=1).fingerprint()
    toy_model(seed=2).save(tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no .staging-, .saving- or .previous- left


def test_refuses_to_overwrite_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        toy_model().save(tmp_path / "photos")
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"precious"


def test_fingerprint_follows_weights_and_config():
    model = toy_model()
    assert model.fingerprint() == toy_model().fingerprint()
    assert model.fingerprint() != toy_model(seed=1).fingerprint()
    different_config = SimilarityModel(model.encoders["default"], SkipConnectionHead(4, normalize=False))
    different_config.head.load_state_dict(model.head.state_dict())
    assert different_config.fingerprint() != model.fingerprint()
    with torch.no_grad():
        model.head.gates[0] += 1e-3
    assert model.fingerprint() != toy_model().fingerprint()


def test_load_moves_to_the_requested_device(tmp_path):
    model = SimilarityModel(ToyEncoder(size=4), LinearHead(4, output_size=2))
    model.save(tmp_path / "model")
    loaded = SimilarityModel.load(tmp_path / "model", device="meta")
    assert loaded.device == torch.device("meta")
