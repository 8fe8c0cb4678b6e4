from torch import Tensor

from simtune.models.heads.base import EncoderHead


class EmptyHead(EncoderHead):
    """No transformation: the encoder embeddings as they are (optionally L2-normalised). A baseline."""

    def transform(self, embeddings: Tensor) -> Tensor:
        return embeddings
