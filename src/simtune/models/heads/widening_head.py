from typing import Any

from torch import Tensor, nn

from simtune.models.heads.activations import make_activation
from simtune.models.heads.base import EncoderHead


class WideningHead(EncoderHead):
    """``activation(linear(x))`` into ``expansion_factor`` times more dimensions: room to separate
    classes that the encoder packs together."""

    def __init__(
        self,
        input_embedding_size: int,
        expansion_factor: float = 4.0,
        activation: str = "relu",
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__(input_embedding_size, dropout=dropout, normalize=normalize)
        self._output_size = int(round(input_embedding_size * expansion_factor))
        if self._output_size < 1:
            raise ValueError(f"expansion_factor {expansion_factor} leaves no output dimensions")
        self.expansion_factor = expansion_factor
        self.activation_name = activation
        self.fc = nn.Linear(input_embedding_size, self._output_size)
        self.activation = make_activation(activation)

    @property
    def output_size(self) -> int:
        return self._output_size

    def transform(self, embeddings: Tensor) -> Tensor:
        return self.activation(self.fc(embeddings))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "expansion_factor": self.expansion_factor, "activation": self.activation_name}
