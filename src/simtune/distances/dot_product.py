from torch import Tensor

from simtune.distances.base import Distance


class DotProduct(Distance):
    """similarity = <x, y>; distance = -similarity (unbounded, ranking-equivalent)."""

    name = "dot_product"

    def similarity(self, x: Tensor, y: Tensor) -> Tensor:
        return (x * y).sum(-1)

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        return -self.similarity(x, y)

    def similarity_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return x @ (x if y is None else y).T

    def distance_matrix(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return -self.similarity_matrix(x, y)
