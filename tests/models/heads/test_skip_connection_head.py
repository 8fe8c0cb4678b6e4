import torch

from simtune.models.heads import SkipConnectionHead


def test_starts_near_identity_and_learns_both_gate_and_projection():
    torch.manual_seed(0)
    head = SkipConnectionHead(64)
    embeddings = torch.randn(16, 64)
    output = head(embeddings)
    relative_change = (output - embeddings).norm() / embeddings.norm()
    assert 0 < relative_change < 0.05
    output.pow(2).sum().backward()
    assert head.gates.grad.abs().sum() > 0 and head.fc.weight.grad.abs().sum() > 0
