import torch.nn.functional as F
from torch import Tensor

from simtune.distances.base import Distance


class Cosine(Distance):
    """similarity = cos(x, y) in [-1, 1]; distance = 1 - similarity in [0, 2]."""

    name = "cosine"

    def similarity(self, x: Tensor, y: Tensor) -> Tensor:
        return (F.normalize(x, dim=-1) * F.normalize(y, dim=-1)).sum(-1)

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 - self.similarity(x, y)

    def similarity_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        x = F.normalize(x, dim=-1)
        y = x if y is None else F.normalize(y, dim=-1)
        return x @ y.T

    def distance_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return 1.0 - self.similarity_matrix(x, y)
