import torch

from simtune.models.heads import EmptyHead


def test_returns_the_encoder_embeddings_unchanged():
    embeddings = torch.randn(3, 5)
    head = EmptyHead(5)
    assert head.output_size == 5 and list(head.parameters()) == []
    assert torch.equal(head(embeddings), embeddings)
