from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from simtune.models.heads.activations import make_activation
from simtune.models.heads.base import EncoderHead


class StackedProjectionHead(EncoderHead):
    """Linear layers of the given ``output_sizes`` with an activation between them (none after the last)."""

    def __init__(
        self,
        input_embedding_size: int,
        output_sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__(input_embedding_size, dropout=dropout, normalize=normalize)
        if not output_sizes or any(size < 1 for size in output_sizes):
            raise ValueError(f"output_sizes must be a non-empty list of positive sizes, got {output_sizes!r}")
        self.output_sizes = [int(size) for size in output_sizes]
        self.activation_name = activation
        layers: list[nn.Module] = []
        for index, (size_in, size_out) in enumerate(zip([input_embedding_size, *self.output_sizes], self.output_sizes)):
            if index > 0:
                layers.append(make_activation(activation))
            layers.append(nn.Linear(size_in, size_out))
        self.layers = nn.Sequential(*layers)

    @property
    def output_size(self) -> int:
        return self.output_sizes[-1]

    def transform(self, embeddings: Tensor) -> Tensor:
        return self.layers(embeddings)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_sizes": self.output_sizes, "activation": self.activation_name}
