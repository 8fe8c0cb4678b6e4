from torch import Tensor

from simtune.distances.base import Distance, safe_sqrt


class Euclidean(Distance):
    """distance = ||x - y||_2; similarity = 1 / (1 + distance) in (0, 1]."""

    name = "euclidean"

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        return safe_sqrt(((x - y) ** 2).sum(-1))

    def similarity(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 / (1.0 + self.distance(x, y))

    def distance_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        y = x if y is None else y
        # |x|^2 + |y|^2 - 2<x,y> is O(B^2) memory (cdist's backward is not); clamp rounding below 0.
        squared = (x * x).sum(-1)[:, None] + (y * y).sum(-1)[None, :] - 2.0 * (x @ y.T)
        return safe_sqrt(squared.clamp_min(0.0))

    def similarity_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return 1.0 / (1.0 + self.distance_matrix(x, y))
