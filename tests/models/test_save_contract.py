"""A component whose saved config and weights would not rebuild it is refused when saved, not when loaded."""

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from simtune.models import SimilarityModel
from simtune.models.encoders.base import Encoder
from simtune.models.heads import EmptyHead, LinearHead, SequentialHead, SkipConnectionHead
from simtune.models.save_contract import UnrebuildableModuleError


class ModuleTakingEncoder(Encoder):
    """Quaterion's examples/cars encoder: the constructor takes a network, save()/load() pickle it."""

    def __init__(self, encoder_model: nn.Module):
        super().__init__()
        self._encoder = encoder_model

    @property
    def trainable(self) -> bool:
        return False

    @property
    def embedding_size(self) -> int:
        return 4

    def forward(self, batch: Tensor) -> Tensor:
        return self._encoder(batch)

    def save(self, output_path: str) -> None:
        torch.save(self._encoder, Path(output_path) / "encoder.pth")

    @classmethod
    def load(cls, input_path: str) -> "ModuleTakingEncoder":
        return cls(torch.load(Path(input_path) / "encoder.pth"))


class ConfigLessEncoder(Encoder):
    """Plain required arguments, but get_config() is the default {}."""

    def __init__(self, size: int, depth: int = 1):
        super().__init__()
        self.size = size
        self.net = nn.Sequential(*[nn.Linear(size, size) for _ in range(depth)])

    @property
    def trainable(self) -> bool:
        return False

    @property
    def embedding_size(self) -> int:
        return self.size

    def forward(self, batch: Tensor) -> Tensor:
        return self.net(batch)


class ForgetfulEncoder(ConfigLessEncoder):
    """Saves ``size`` but not ``depth``: rebuilds, with the wrong number of layers."""

    def get_config(self) -> dict[str, Any]:
        return {"size": self.size}


class CompleteEncoder(ConfigLessEncoder):
    def get_config(self) -> dict[str, Any]:
        return {"size": self.size, "depth": len(self.net)}


class TensorConfigEncoder(ConfigLessEncoder):
    def get_config(self) -> dict[str, Any]:
        return {"size": torch.tensor(self.size)}


def test_a_constructor_taking_a_module_fails_at_save_naming_the_argument_and_the_fix(tmp_path):
    model = SimilarityModel(ModuleTakingEncoder(nn.Linear(4, 4)), EmptyHead(4))
    with pytest.raises(
        UnrebuildableModuleError,
        match=r"cannot save encoder 'default' \(.*ModuleTakingEncoder\): its constructor requires encoder_model, "
        r"which get_config\(\) \(returning \[\]\) does not provide.*Fix: build every submodule inside __init__ "
        r"from plain "
        r"arguments.*overrides save\(\)/load\(\), which SimilarityModel.save and SimilarityModel.load never call",
    ):
        model.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()  # refused before anything was written
    assert not list(tmp_path.rglob("*.pth")), "no whole-module pickle is ever written"


def test_required_arguments_missing_from_the_default_config_are_named(tmp_path):
    with pytest.raises(UnrebuildableModuleError, match="requires size, which get_config"):
        SimilarityModel(ConfigLessEncoder(4), EmptyHead(4)).save(tmp_path / "model")
    with pytest.raises(UnrebuildableModuleError, match="requires size"):
        ConfigLessEncoder(4).save(tmp_path / "encoder")


def test_a_config_that_rebuilds_a_different_network_is_refused(tmp_path):
    with pytest.raises(
        UnrebuildableModuleError, match=r"builds a different network: it lacks weights net.1.bias, net.1.weight"
    ):
        SimilarityModel(ForgetfulEncoder(4, depth=2), EmptyHead(4)).save(tmp_path / "model")


def test_config_values_must_be_json(tmp_path):
    with pytest.raises(UnrebuildableModuleError, match=r"values for \['size'\] are not JSON"):
        SimilarityModel(TensorConfigEncoder(4), EmptyHead(4)).save(tmp_path / "model")


def test_a_head_is_checked_too(tmp_path):
    class BareHead(LinearHead):
        def get_config(self) -> dict[str, Any]:
            return {"input_embedding_size": self.input_embedding_size}

    with pytest.raises(UnrebuildableModuleError, match="cannot save head"):
        SimilarityModel(CompleteEncoder(4), BareHead(4, output_size=3)).save(tmp_path / "model")


@pytest.mark.parametrize(
    "head",
    [
        EmptyHead(4),
        LinearHead(4, output_size=3),
        SkipConnectionHead(4, dropout=0.1),
        SequentialHead(4, [{"type": "linear", "size": 6}, {"type": "relu"}]),
    ],
)
def test_rebuildable_components_save_and_load(tmp_path, head, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    model = SimilarityModel(CompleteEncoder(4, depth=2), head)
    model.save(tmp_path / "model")
    loaded = SimilarityModel.load(tmp_path / "model", trusted_classes=[CompleteEncoder])
    batch = {"default": torch.randn(3, 4)}
    assert torch.equal(loaded.eval()(batch), model.eval()(batch))
