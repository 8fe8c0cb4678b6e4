import json

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from simtune.losses.circle_loss import CircleLoss


def reference_circle(embeddings, groups, m, gamma):
    """The definition, one anchor and one pair at a time: log(1 + sum_n sum_p exp(gamma (a_n (s_n - m)
    - a_p (s_p - 1 + m)))) with self-paced weights a_p = [1 + m - s_p]+, a_n = [s_n + m]+ held
    constant; averaged over anchors that have at least one positive and one negative."""
    losses = []
    for i in range(len(embeddings)):
        positives, negatives = [], []
        for j in range(len(embeddings)):
            if j == i:
                continue
            s = torch.dot(embeddings[i], embeddings[j]) / (embeddings[i].norm() * embeddings[j].norm())
            if groups[j] == groups[i]:
                positives.append(-max(1 + m - s.item(), 0.0) * (s - (1 - m)))
            else:
                negatives.append(max(s.item() + m, 0.0) * (s - m))
        if positives and negatives:
            pair_sum = sum(torch.exp(gamma * (n + p)) for n in negatives for p in positives)
            losses.append(torch.log(1 + pair_sum))
    return sum(losses) / len(losses) if losses else torch.zeros((), dtype=embeddings.dtype)


def random_batch(seed, batch=12, dim=5, num_groups=3, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, dim, generator=generator, dtype=dtype, requires_grad=True)
    groups = torch.randint(0, num_groups, (batch,), generator=generator)
    return embeddings, groups


@pytest.mark.parametrize("m, gamma", [(0.25, 32.0), (0.4, 80.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_and_gradient_match_brute_force_definition(seed, m, gamma):
    embeddings, groups = random_batch(seed)
    groups[-1] = 99  # an anchor with no positive: excluded from the mean
    value = CircleLoss(m=m, gamma=gamma)(embeddings, groups)
    expected = reference_circle(embeddings, groups, m, gamma)
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)
    grad = torch.autograd.grad(value, embeddings)[0]
    expected_grad = torch.autograd.grad(expected, embeddings)[0]
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pytorch_metric_learning(seed):
    # Same conventions: per-anchor loss over all pairs, PML's AvgNonZeroReducer = mean over anchors
    # with a positive and a negative (softplus is never exactly 0 at these scales).
    embeddings, groups = random_batch(seed, batch=12, dim=8, num_groups=4, dtype=torch.float32)
    value = CircleLoss(m=0.4, gamma=80.0)(embeddings, groups)
    expected = pml_losses.CircleLoss(m=0.4, gamma=80.0)(embeddings, groups)
    assert value.item() == pytest.approx(expected.item(), abs=1e-4)
    grad = torch.autograd.grad(value, embeddings)[0]
    expected_grad = torch.autograd.grad(expected, embeddings)[0]
    torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=0)


@pytest.mark.parametrize("groups", [[0, 1, 2, 3], [5, 5, 5, 5], [7]])
def test_batches_without_positive_and_negative_give_zero_and_zero_gradient(groups):
    embeddings = torch.randn(len(groups), 6, requires_grad=True)
    value = CircleLoss()(embeddings, torch.tensor(groups))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


@pytest.mark.parametrize("distance", ["cosine", "dot_product", "euclidean", "manhattan"])
def test_all_equal_embeddings_give_finite_loss_and_gradient(distance):
    embeddings = torch.ones(6, 4, requires_grad=True)
    value = CircleLoss(distance=distance)(embeddings, torch.tensor([0, 0, 1, 1, 2, 2]))
    value.backward()
    assert torch.isfinite(value) and value > 0  # negatives sit on the positives: there is work to do
    assert torch.isfinite(embeddings.grad).all()


def test_separated_groups_lose_less_than_mixed_groups():
    groups = torch.tensor([0, 0, 1, 1])
    separated = torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [0.05, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.05], [0.05, 1.0]])
    loss = CircleLoss()
    assert loss(separated, groups) < loss(mixed, groups)


def test_config_round_trips_through_json():
    loss = CircleLoss(m=0.25, gamma=128.0, distance="dot_product")
    rebuilt = CircleLoss(**json.loads(json.dumps(loss.get_config())))
    assert rebuilt.get_config() == loss.get_config() == {"distance": "dot_product", "m": 0.25, "gamma": 128.0}


def test_bad_input_names_the_input():
    with pytest.raises(ValueError, match=r"groups must be \(batch,\)"):
        CircleLoss()(torch.randn(4, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="gamma"):
        CircleLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="unknown distance"):
        CircleLoss(distance="cosin")
