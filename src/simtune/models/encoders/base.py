"""The Encoder contract: turn a batch of raw objects into embeddings, and save/load itself.

A frozen encoder (``trainable == False``) is pinned to eval mode with ``requires_grad=False``: calling
``.train()`` on it (or on any module that contains it) is a no-op, so BatchNorm statistics and dropout
never move while a head is trained on top of it.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable

from torch import Tensor, nn
from torch.utils.data import default_collate


class Encoder(nn.Module):
    """Subclass and implement ``forward``, ``trainable``, ``embedding_size``, ``get_config``.

    Built-in encoders register a name (``registered_name``) so a saved model reloads from its JSON
    config alone; a user's subclass is saved by import path instead (see ``simtune.models.registry``).
    ``save``/``load`` default to ``config.json`` + ``weights.safetensors`` (see
    ``simtune.models.serialization``); override only for encoders whose weights live elsewhere.
    """

    registered_name: str | None = None

    @property
    @abstractmethod
    def trainable(self) -> bool: ...

    @property
    @abstractmethod
    def embedding_size(self) -> int: ...

    @abstractmethod
    def forward(self, batch: Any) -> Tensor: ...

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``type(self)(**config)`` rebuilds the architecture."""
        return {}

    def get_collate_fn(self) -> Callable[[list[Any]], Any]:
        """Turns a list of raw objects (images, texts, ...) into this encoder's batch input."""
        return default_collate

    def preprocessing_config(self) -> dict[str, Any]:
        """Whatever, besides the weights, changes the embedding of a raw object (cache fingerprints)."""
        return {}

    def train(self, mode: bool = True) -> "Encoder":
        return super().train(mode and self.trainable)

    def save(self, path: str | Path) -> None:
        from simtune.models.serialization import save_module

        save_module(self, path)

    @classmethod
    def load(cls, path: str | Path) -> "Encoder":
        from simtune.models.serialization import load_module

        return load_module(path, expected_base=Encoder)
