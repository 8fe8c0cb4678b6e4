import torch
from torch import Tensor, nn

from simtune.models.heads.base import EncoderHead

INITIAL_GATE_LOGIT = -4.0  # sigmoid(-4) ~ 0.018: the head starts as a near-identity map


class SkipConnectionHead(EncoderHead):
    """``x + sigmoid(gates) * linear(x)``: a gated residual that starts near the identity.

    Training starts from the pretrained embedding space and moves away only as far as the loss asks,
    which is why it is the default head for a frozen encoder.
    """

    def __init__(self, input_embedding_size: int, dropout: float = 0.0, normalize: bool = False) -> None:
        super().__init__(input_embedding_size, dropout=dropout, normalize=normalize)
        self.gates = nn.Parameter(torch.full((input_embedding_size,), INITIAL_GATE_LOGIT))
        self.fc = nn.Linear(input_embedding_size, input_embedding_size)

    def transform(self, embeddings: Tensor) -> Tensor:
        return embeddings + torch.sigmoid(self.gates) * self.fc(embeddings)
