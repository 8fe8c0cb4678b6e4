from typing import Any

from torch import Tensor, nn

from simtune.models.heads.base import EncoderHead


class LinearHead(EncoderHead):
    """One linear projection, to ``output_size`` dimensions (default: the input size)."""

    def __init__(
        self,
        input_embedding_size: int,
        output_size: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__(input_embedding_size, dropout=dropout, normalize=normalize)
        self._output_size = output_size or input_embedding_size
        self.bias = bias
        self.fc = nn.Linear(input_embedding_size, self._output_size, bias=bias)

    @property
    def output_size(self) -> int:
        return self._output_size

    def transform(self, embeddings: Tensor) -> Tensor:
        return self.fc(embeddings)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_size": self._output_size, "bias": self.bias}
