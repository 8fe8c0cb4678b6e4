"""Cross-batch memory (Wang et al., 2020): mine against embeddings of recent batches, not just this one.

Once the encoder changes slowly, embeddings from the last few thousand samples are still faithful, so
a group loss sees many more hard negatives for the cost of a matrix. As in the paper and
pytorch-metric-learning's ``CrossBatchMemory``, only the batch rows are anchors; the memory serves as
references (``GroupLoss`` with ``supports_references``), never as anchors of its own, and the memory
term is ``weight * loss(batch vs batch + memory)`` on top of the plain batch loss.

A remembered row of a sample that is in the current batch (its embedding from an earlier epoch) is
left out: it is the same sample, not a positive. pytorch-metric-learning only leaves out the current
batch's own copy (by position); the values agree whenever the memory holds no other copy. The batch
rows compared with each other keep their gradient on both sides, as in the plain batch loss
(pytorch-metric-learning compares with a detached copy); memory rows carry none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class XbmConfig:
    """``buffer_size`` remembered embeddings; the memory loss starts at ``start_iteration`` with ``weight``."""

    buffer_size: int = 8192
    start_iteration: int = 1000
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.buffer_size, int) or self.buffer_size < 1:
            raise ValueError(f"XbmConfig.buffer_size={self.buffer_size!r}; expected an int >= 1")
        if not isinstance(self.start_iteration, int) or self.start_iteration < 0:
            raise ValueError(f"XbmConfig.start_iteration={self.start_iteration!r}; expected an int >= 0")
        if self.weight < 0:
            raise ValueError(f"XbmConfig.weight={self.weight!r}; expected >= 0")


class CrossBatchMemory(nn.Module):
    """A ring buffer of detached embeddings, their groups and their dataset indices. Buffers, so it
    follows the model's device and is saved in checkpoints: a resumed run mines against the same memory."""

    def __init__(self, config: XbmConfig, embedding_size: int):
        super().__init__()
        self.config = config
        self.register_buffer("embeddings", torch.zeros(config.buffer_size, embedding_size))
        self.register_buffer("groups", torch.zeros(config.buffer_size, dtype=torch.long))
        self.register_buffer("indices", torch.zeros(config.buffer_size, dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    def enqueue(self, embeddings: Tensor, groups: Tensor, indices: Tensor) -> None:
        capacity = self.config.buffer_size
        embeddings, groups, indices = embeddings.detach()[-capacity:], groups[-capacity:], indices[-capacity:]
        rows = (self.position + torch.arange(len(embeddings), device=self.position.device)) % capacity
        self.embeddings[rows] = embeddings.to(self.embeddings.dtype)
        self.groups[rows] = groups.to(self.groups.device)
        self.indices[rows] = indices.to(self.indices.device)
        self.position.copy_((self.position + len(embeddings)) % capacity)
        self.filled.clamp_(max=capacity - len(embeddings)).add_(len(embeddings))

    def contents(self) -> tuple[Tensor, Tensor, Tensor]:
        filled = int(self.filled)
        return self.embeddings[:filled], self.groups[:filled], self.indices[:filled]

    def references(self, batch_indices: Tensor) -> tuple[Tensor, Tensor]:
        """Remembered embeddings and groups, without the rows of samples that are in this batch."""
        embeddings, groups, indices = self.contents()
        keep = ~torch.isin(indices, batch_indices.to(indices.device))
        return embeddings[keep], groups[keep]
