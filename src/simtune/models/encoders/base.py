"""The Encoder contract: turn a batch of raw objects into embeddings, and save/load itself.

A frozen encoder (``trainable == False``) is pinned to eval mode with ``requires_grad=False``: calling
``.train()`` on it (or on any module that contains it) keeps it in eval mode, and every forward call
re-pins it, so BatchNorm statistics and dropout never move while a head is trained on top of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torch.utils.data import default_collate


class Encoder(nn.Module, ABC):
    """Subclass and implement ``forward``, ``trainable``, ``embedding_size`` and ``get_config``.

    ``get_config`` returns JSON-able constructor arguments; ``from_config`` rebuilds the architecture
    from them (weights are loaded afterwards, from safetensors). Built-in encoders are saved by name, a
    user's subclass by import path (see :mod:`simtune.models.registry`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_forward_pre_hook(_pin_if_frozen)

    @property
    @abstractmethod
    def trainable(self) -> bool: ...

    @property
    @abstractmethod
    def embedding_size(self) -> int: ...

    @abstractmethod
    def forward(self, batch: Any) -> Tensor: ...

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``from_config(get_config())`` rebuilds the architecture."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Encoder:
        """The architecture only; pretrained-weight loading is skipped, the saved weights follow."""
        return cls(**config)

    def get_collate_fn(self) -> Callable[[list[Any]], Any]:
        """Turns a list of raw objects (images, texts, ...) into this encoder's batch input."""
        return default_collate

    def preprocessing_config(self) -> dict[str, Any]:
        """Whatever, besides the weights, changes the embedding of a raw object (cache fingerprints)."""
        return {}

    def train(self, mode: bool = True) -> Encoder:
        super().train(mode and self.trainable)
        if not self.trainable:
            self.requires_grad_(False)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Encoder:
        return super().requires_grad_(requires_grad and self.trainable)

    def save(self, path: str | Path) -> None:
        from simtune.models.save_contract import check_rebuildable
        from simtune.models.serialization import save_module

        check_rebuildable(self, type(self).__name__, Encoder)
        save_module(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", trusted_classes: Iterable[Any] = ()) -> Encoder:
        """Rebuilds a saved Encoder; a user class must be in ``trusted_classes`` or registered (see
        ``SimilarityModel.load``)."""
        from simtune.models.serialization import load_module

        return load_module(path, expected_base=cls, device=device, trusted_classes=trusted_classes)


def _pin_if_frozen(encoder: Encoder, _inputs: Any) -> None:
    """Undoes whatever switched a frozen encoder to training (``nn.Module.train`` on a child, a manual
    ``param.requires_grad = True``) before it computes anything."""
    if encoder.trainable:
        return
    if encoder.training or any(module.training for module in encoder.modules()):
        nn.Module.train(encoder, False)
    for parameter in encoder.parameters():
        if parameter.requires_grad:
            parameter.requires_grad_(False)
