import torch
from torch import Tensor, nn

from simtune.models.heads.base import EncoderHead

INITIAL_GATE_LOGIT = 2.0  # sigmoid(2) ~ 0.88: every dimension starts mostly open


class GatedHead(EncoderHead):
    """``x * sigmoid(gates)``: learns only how much each embedding dimension matters (one weight per
    dimension), the most conservative head when labelled data is scarce."""

    def __init__(self, input_embedding_size: int, dropout: float = 0.0, normalize: bool = False) -> None:
        super().__init__(input_embedding_size, dropout=dropout, normalize=normalize)
        self.gates = nn.Parameter(torch.full((input_embedding_size,), INITIAL_GATE_LOGIT))

    def transform(self, embeddings: Tensor) -> Tensor:
        return embeddings * torch.sigmoid(self.gates)
