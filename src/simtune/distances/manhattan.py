import torch
from torch import Tensor

from simtune.distances.base import Distance


class Manhattan(Distance):
    """distance = ||x - y||_1; similarity = 1 / (1 + distance) in (0, 1]."""

    name = "manhattan"

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        return (x - y).abs().sum(-1)

    def similarity(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 / (1.0 + self.distance(x, y))

    def distance_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return torch.cdist(x, x if y is None else y, p=1.0)

    def similarity_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return 1.0 / (1.0 + self.distance_matrix(x, y))
