"""The trainable part on top of the encoders: a small module that reshapes the embedding space."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn


class EncoderHead(nn.Module, ABC):
    """Subclass and implement ``transform``; ``forward`` = dropout -> transform -> optional L2 norm.

    Subclasses with extra constructor arguments extend ``get_config`` (and ``output_size`` when it
    differs from the input size), so ``from_config(get_config())`` rebuilds the architecture.
    """

    def __init__(self, input_embedding_size: int, dropout: float = 0.0, normalize: bool = False) -> None:
        super().__init__()
        if input_embedding_size < 1:
            raise ValueError(f"input_embedding_size must be positive, got {input_embedding_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_embedding_size = input_embedding_size
        self.dropout_rate = dropout
        self.normalize = normalize
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @abstractmethod
    def transform(self, embeddings: Tensor) -> Tensor: ...

    @property
    def output_size(self) -> int:
        return self.input_embedding_size

    def forward(self, embeddings: Tensor) -> Tensor:
        output = self.transform(self.dropout(embeddings))
        return F.normalize(output, dim=-1) if self.normalize else output

    def get_config(self) -> dict[str, Any]:
        return {
            "input_embedding_size": self.input_embedding_size,
            "dropout": self.dropout_rate,
            "normalize": self.normalize,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EncoderHead:
        return cls(**config)

    def save(self, path: str | Path) -> None:
        from simtune.models.save_contract import check_rebuildable
        from simtune.models.serialization import save_module

        check_rebuildable(self, type(self).__name__, EncoderHead)
        save_module(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", trusted_classes: Iterable[Any] = ()) -> EncoderHead:
        """Rebuilds a saved EncoderHead; a user class must be in ``trusted_classes`` or registered (see
        ``SimilarityModel.load``)."""
        from simtune.models.serialization import load_module

        return load_module(path, expected_base=cls, device=device, trusted_classes=trusted_classes)
