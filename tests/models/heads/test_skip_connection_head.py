import pytest
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


def test_quaterion_arguments_skip_dropout_and_n_layers():
    head = SkipConnectionHead(384, skip_dropout=0.1, n_layers=2)
    x = torch.randn(64, 384)
    head.eval()
    with torch.no_grad():
        branch = head.fc[2](torch.relu(head.fc[0](x)))
        assert torch.allclose(head(x), x + torch.sigmoid(head.gates) * branch)
    head.train()
    with torch.no_grad():
        head.gates.fill_(10.0)  # open gates: the branch's dropout shows in the output
        different = (head(x) - head(x)).abs().max()
        head.gates.fill_(-100.0)  # closed gates: only the skip path, dropout never touches it
        assert torch.equal(head(x), x)
    assert different > 0
    rebuilt = SkipConnectionHead.from_config(head.get_config())
    assert rebuilt.skip_dropout_rate == 0.1 and rebuilt.n_layers == 2
    assert set(rebuilt.state_dict()) == set(head.state_dict())


def test_a_config_saved_before_skip_dropout_existed_still_rebuilds():
    head = SkipConnectionHead.from_config({"input_embedding_size": 8, "dropout": 0.0, "normalize": False})
    assert head.n_layers == 1 and set(head.state_dict()) == {"gates", "fc.weight", "fc.bias"}


def test_bad_quaterion_arguments_are_named():
    with pytest.raises(ValueError, match="skip_dropout must be in"):
        SkipConnectionHead(8, skip_dropout=1.0)
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        SkipConnectionHead(8, n_layers=0)
