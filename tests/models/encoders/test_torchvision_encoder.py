import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

from simtune.models import Encoder
from simtune.models.encoders import TorchvisionEncoder

IMAGES = [Image.new("RGB", (64, 64), color) for color in ("red", "navy")]


@pytest.mark.parametrize("name, size", [("resnet18", 512), ("mobilenet_v3_small", 1024)])
def test_classifier_is_replaced_and_embedding_size_discovered(name, size):
    encoder = TorchvisionEncoder(name).eval()
    with torch.no_grad():
        output = encoder(encoder.get_collate_fn()(IMAGES))
    assert encoder.embedding_size == size and output.shape == (2, size)


def test_missing_cached_weights_name_the_file_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError, match=str(expected)):
        TorchvisionEncoder("resnet18", weights="DEFAULT")


def test_cached_weights_are_found_by_torchvision_name(tmp_path, monkeypatch):
    reference = torchvision.models.resnet18()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    encoder = TorchvisionEncoder("resnet18", weights="IMAGENET1K_V1")
    assert torch.equal(encoder.network.conv1.weight, reference.conv1.weight)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_from_a_local_file(tmp_path, suffix):
    reference = torchvision.models.resnet18()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save(reference.state_dict(), path)
    else:
        save_file(reference.state_dict(), path)
    encoder = TorchvisionEncoder("resnet18", weights=path)
    assert torch.equal(encoder.network.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_bad_names_and_files_are_reported(tmp_path):
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet19'"):
        TorchvisionEncoder("resnet19")
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        TorchvisionEncoder("resnet18", weights=tmp_path / "nothere.pth")
    with pytest.raises(ValueError, match="neither a weights file"):
        TorchvisionEncoder("resnet18", weights="BEST_EVER")


def test_save_and_load_round_trip(tmp_path):
    encoder = TorchvisionEncoder("resnet18", image_size=64).eval()
    encoder.save(tmp_path / "encoder")
    loaded = Encoder.load(tmp_path / "encoder")
    batch = encoder.get_collate_fn()(IMAGES)
    assert batch.shape[-1] == 64 and loaded.get_config() == encoder.get_config()
    with torch.no_grad():
        assert torch.equal(encoder(batch), loaded(batch))
