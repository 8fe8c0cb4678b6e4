import torch

from simtune.models.heads import GatedHead


def test_scales_each_dimension_by_its_own_gate():
    head = GatedHead(3)
    with torch.no_grad():
        head.gates.copy_(torch.tensor([-50.0, 0.0, 50.0]))
    assert torch.allclose(head(torch.ones(1, 3)), torch.tensor([[0.0, 0.5, 1.0]]))
    assert sum(p.numel() for p in head.parameters()) == 3
