import json

import pytest
import torch
from reference import assert_close, center, value_and_grad

from simtune.losses import CenterLoss


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_matches_brute_force_value_and_gradient(distance):
    torch.manual_seed(0)
    loss = CenterLoss(num_groups=4, embedding_size=5, distance=distance).double()
    embeddings, groups = torch.randn(10, 5, dtype=torch.float64), torch.randint(0, 4, (10,))

    def ours(x, centers):
        return torch.func.functional_call(loss, {"centers": centers}, (x, groups))

    value, grads = value_and_grad(ours, embeddings, loss.centers)
    expected, expected_grads = value_and_grad(
        lambda x, c: center(x, groups.tolist(), c, distance), embeddings, loss.centers
    )
    assert value > 0
    assert_close(value, expected, 1e-5, "loss")
    for name, grad, expected_grad in zip(["embeddings", "centers"], grads, expected_grads):
        assert_close(grad, expected_grad, 1e-5, f"gradient w.r.t. {name}")


def test_centres_are_trainable_and_move_towards_their_group():
    loss = CenterLoss(num_groups=2, embedding_size=3)
    assert [id(p) for p in loss.trainable_parameters] == [id(loss.centers)]
    embeddings, groups = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), torch.tensor([0, 1])
    optimizer = torch.optim.SGD(loss.trainable_parameters, lr=0.5)
    before = loss(embeddings, groups).item()
    for _ in range(20):
        optimizer.zero_grad()
        loss(embeddings, groups).backward()
        optimizer.step()
    assert loss(embeddings, groups).item() < before * 0.01


def test_config_round_trips_through_json_and_bad_groups_are_named():
    loss = CenterLoss(num_groups=5, embedding_size=8, distance="cosine")
    config = json.loads(json.dumps(loss.get_config()))
    assert CenterLoss(**config).get_config() == config == {"distance": "cosine", "num_groups": 5, "embedding_size": 8}
    with pytest.raises(ValueError, match="num_groups=5"):
        loss(torch.randn(2, 8), torch.tensor([0, -1]))


def test_embeddings_on_their_centres_give_zero_and_finite_gradient():
    loss = CenterLoss(num_groups=2, embedding_size=3)
    embeddings = loss.centers.detach()[torch.tensor([0, 1, 1])].clone().requires_grad_(True)
    value = loss(embeddings, torch.tensor([0, 1, 1]))
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-10) and torch.isfinite(embeddings.grad).all()
