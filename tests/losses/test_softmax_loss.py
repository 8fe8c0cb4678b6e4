import json

import pytest
import torch
from reference import assert_close, softmax, value_and_grad

from simtune.losses import SoftmaxLoss


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_matches_brute_force_value_and_gradient(temperature):
    torch.manual_seed(0)
    loss = SoftmaxLoss(num_groups=4, embedding_size=5, temperature=temperature).double()
    embeddings, groups = torch.randn(10, 5, dtype=torch.float64), torch.randint(0, 4, (10,))
    inputs = (embeddings, loss.classifier.weight, loss.classifier.bias)

    def ours(x, weight, bias):
        return torch.func.functional_call(loss, {"classifier.weight": weight, "classifier.bias": bias}, (x, groups))

    value, grads = value_and_grad(ours, *inputs)
    expected, expected_grads = value_and_grad(lambda x, w, b: softmax(x, groups.tolist(), w, b, temperature), *inputs)
    assert_close(value, expected, 1e-5, "loss")
    for name, grad, expected_grad in zip(["embeddings", "weight", "bias"], grads, expected_grads):
        assert_close(grad, expected_grad, 1e-5, f"gradient w.r.t. {name}")


def test_class_weights_are_trainable_parameters():
    loss = SoftmaxLoss(num_groups=3, embedding_size=4)
    assert {id(p) for p in loss.trainable_parameters} == {id(loss.classifier.weight), id(loss.classifier.bias)}
    optimizer = torch.optim.SGD(loss.trainable_parameters, lr=1.0)
    before = loss.classifier.weight.detach().clone()
    loss(torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    optimizer.step()
    assert not torch.equal(before, loss.classifier.weight)


def test_config_round_trips_through_json():
    loss = SoftmaxLoss(num_groups=7, embedding_size=16, temperature=0.5)
    config = json.loads(json.dumps(loss.get_config()))
    assert SoftmaxLoss(**config).get_config() == config == {"num_groups": 7, "embedding_size": 16, "temperature": 0.5}


def test_bad_inputs_are_named():
    loss = SoftmaxLoss(num_groups=3, embedding_size=4)
    with pytest.raises(ValueError, match="num_groups=3"):
        loss(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="embedding_size=4"):
        loss(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="num_groups"):
        SoftmaxLoss(num_groups=0, embedding_size=4)
    with pytest.raises(ValueError, match="temperature"):
        SoftmaxLoss(num_groups=2, embedding_size=4, temperature=0)


def test_degenerate_batches_are_finite():
    loss = SoftmaxLoss(num_groups=3, embedding_size=4)
    embeddings = torch.zeros(5, 4, requires_grad=True)
    value = loss(embeddings, torch.zeros(5, dtype=torch.long))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(embeddings.grad).all()
