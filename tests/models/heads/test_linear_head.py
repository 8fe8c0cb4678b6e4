import torch

from simtune.models.heads import LinearHead


def test_projects_to_the_requested_size_or_keeps_it():
    assert LinearHead(8, output_size=3)(torch.randn(2, 8)).shape == (2, 3)
    head = LinearHead(8, bias=False)
    assert head.output_size == 8 and head.fc.bias is None
    assert torch.allclose(head(torch.ones(1, 8)), head.fc.weight.sum(1)[None])
