"""A distance knows four views of itself; losses, metrics and the search index all pick one by name."""

from abc import ABC, abstractmethod

import torch
from torch import Tensor


class Distance(ABC):
    """Pairwise (row i of x with row i of y) and matrix (every row of x with every row of y) forms.

    ``similarity`` is higher-is-closer, ``distance`` is lower-is-closer; the two are monotone maps of
    each other so rankings agree whichever one a caller uses.
    """

    name: str

    @abstractmethod
    def distance_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor: ...

    @abstractmethod
    def similarity_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor: ...

    @abstractmethod
    def distance(self, x: Tensor, y: Tensor) -> Tensor: ...

    @abstractmethod
    def similarity(self, x: Tensor, y: Tensor) -> Tensor: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def safe_sqrt(squared: Tensor, eps: float = 1e-12) -> Tensor:
    """sqrt with a finite gradient at 0 (identical embeddings must not give NaN gradients)."""
    return torch.sqrt(squared.clamp_min(eps))
