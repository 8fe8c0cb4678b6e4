from typing import Any

import torch
from torch import Tensor, nn

from simtune.models.heads.base import EncoderHead

INITIAL_GATE_LOGIT = -4.0  # sigmoid(-4) ~ 0.018: the head starts as a near-identity map


class SkipConnectionHead(EncoderHead):
    """``x + sigmoid(gates) * fc(skip_dropout(x))``: a gated residual that starts near the identity.

    Training starts from the pretrained embedding space and moves away only as far as the loss asks,
    which is why it is the default head for a frozen encoder. ``skip_dropout`` drops inputs of the
    trainable branch only, so the pretrained embedding always passes through whole; ``n_layers > 1``
    makes the branch a ReLU MLP of that many square linear layers. Both are Quaterion's arguments.
    """

    def __init__(
        self,
        input_embedding_size: int,
        dropout: float = 0.0,
        skip_dropout: float = 0.0,
        n_layers: int = 1,
        normalize: bool = False,
    ) -> None:
        super().__init__(input_embedding_size, dropout=dropout, normalize=normalize)
        if not 0.0 <= skip_dropout < 1.0:
            raise ValueError(f"skip_dropout must be in [0, 1), got {skip_dropout}")
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive integer, got {n_layers!r}")
        self.skip_dropout_rate = skip_dropout
        self.n_layers = n_layers
        self.skip_dropout = nn.Dropout(skip_dropout) if skip_dropout > 0 else nn.Identity()
        self.gates = nn.Parameter(torch.full((input_embedding_size,), INITIAL_GATE_LOGIT))
        layers: list[nn.Module] = [nn.Linear(input_embedding_size, input_embedding_size)]
        for _ in range(n_layers - 1):
            layers += [nn.ReLU(), nn.Linear(input_embedding_size, input_embedding_size)]
        self.fc = layers[0] if n_layers == 1 else nn.Sequential(*layers)

    def transform(self, embeddings: Tensor) -> Tensor:
        return embeddings + torch.sigmoid(self.gates) * self.fc(self.skip_dropout(embeddings))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "skip_dropout": self.skip_dropout_rate, "n_layers": self.n_layers}
