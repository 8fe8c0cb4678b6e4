import json

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from simtune.losses.fast_ap_loss import FastAPLoss


def reference_fast_ap(embeddings, groups, num_bins):
    """The definition, one anchor, bin and neighbour at a time: squared distances of unit vectors in
    [0, 4], triangular soft binning relu(1 - |d - z_l| / delta) at z_l = l * delta, delta = 4/num_bins,
    FastAP = 1/N+ sum_l h+_l H+_l / H_l; loss = mean over anchors with a positive of 1 - FastAP."""
    delta = 4.0 / num_bins
    unit = [e / e.norm() for e in embeddings]
    losses = []
    for i in range(len(embeddings)):
        num_positives = sum(1 for j in range(len(embeddings)) if j != i and groups[j] == groups[i])
        if num_positives == 0:
            continue
        fast_ap = 0.0
        positive_cumulative, all_cumulative = 0.0, 0.0
        for bin_index in range(num_bins + 1):
            positive_count, all_count = 0.0, 0.0
            for j in range(len(embeddings)):
                if j == i:
                    continue
                distance = ((unit[i] - unit[j]) ** 2).sum()
                pulse = torch.relu(1 - torch.abs(distance - bin_index * delta) / delta)
                all_count = all_count + pulse
                if groups[j] == groups[i]:
                    positive_count = positive_count + pulse
            positive_cumulative = positive_cumulative + positive_count
            all_cumulative = all_cumulative + all_count
            if all_cumulative > 0:
                fast_ap = fast_ap + positive_count * positive_cumulative / all_cumulative
        losses.append(1 - fast_ap / num_positives)
    return sum(losses) / len(losses) if losses else torch.zeros((), dtype=embeddings.dtype)


def random_batch(seed, batch=12, dim=4, num_groups=3, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, dim, generator=generator, dtype=dtype, requires_grad=True)
    groups = torch.randint(0, num_groups, (batch,), generator=generator)
    return embeddings, groups


@pytest.mark.parametrize("num_bins", [1, 9])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_and_gradient_match_brute_force_definition(seed, num_bins):
    embeddings, groups = random_batch(seed)
    groups[-1] = 99  # an anchor with no positive: excluded from the mean
    value = FastAPLoss(num_bins=num_bins)(embeddings, groups)
    expected = reference_fast_ap(embeddings, groups, num_bins)
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)
    grad = torch.autograd.grad(value, embeddings)[0]
    expected_grad = torch.autograd.grad(expected, embeddings)[0]
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_bins", [10, 20])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pytorch_metric_learning(seed, num_bins):
    # Same conventions: PML's default distance is LpDistance(power=2) on normalised embeddings
    # (squared Euclidean in [0, 4]); its MeanReducer averages over anchors that have a positive.
    embeddings, groups = random_batch(seed, batch=12, dim=8, num_groups=3, dtype=torch.float32)
    value = FastAPLoss(num_bins=num_bins)(embeddings, groups)
    expected = pml_losses.FastAPLoss(num_bins=num_bins)(embeddings, groups)
    assert value.item() == pytest.approx(expected.item(), abs=1e-4)
    grad = torch.autograd.grad(value, embeddings)[0]
    expected_grad = torch.autograd.grad(expected, embeddings)[0]
    torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=0)


def test_perfect_ranking_loses_less_than_inverted_ranking():
    groups = torch.tensor([0, 0, 1, 1])
    separated = torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [0.05, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.05], [0.05, 1.0]])
    loss = FastAPLoss()
    assert loss(separated, groups) < 0.01 < 0.5 < loss(mixed, groups)


@pytest.mark.parametrize("groups", [[0, 1, 2, 3], [7]])
def test_no_positive_pair_gives_zero_and_zero_gradient(groups):
    embeddings = torch.randn(len(groups), 6, requires_grad=True)
    value = FastAPLoss()(embeddings, torch.tensor(groups))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


@pytest.mark.parametrize("case", ["all_equal", "one_class", "zero_embedding", "antipodal"])
def test_degenerate_batches_give_finite_loss_and_gradient(case):
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    embeddings = torch.randn(6, 4)
    if case == "all_equal":
        embeddings = torch.ones(6, 4)
    elif case == "one_class":
        groups = torch.zeros(6, dtype=torch.long)
    elif case == "zero_embedding":
        embeddings[0] = 0.0
    elif case == "antipodal":  # distance exactly 4: the last bin edge
        embeddings = torch.tensor([[1.0, 0.0], [-1.0, 0.0]]).repeat(3, 1)
    embeddings.requires_grad_(True)
    value = FastAPLoss()(embeddings, groups)
    value.backward()
    assert torch.isfinite(value) and -1e-6 <= value.item() <= 1.0 + 1e-6
    assert torch.isfinite(embeddings.grad).all()


def test_config_round_trips_through_json():
    loss = FastAPLoss(num_bins=25)
    assert FastAPLoss(**json.loads(json.dumps(loss.get_config()))).get_config() == {"num_bins": 25}


def test_bad_input_names_the_input():
    with pytest.raises(ValueError, match="num_bins"):
        FastAPLoss(num_bins=0)
    with pytest.raises(ValueError, match="integer"):
        FastAPLoss()(torch.randn(3, 2), torch.tensor([0.5, 1.0, 1.0]))
