import json

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners

from simtune.functional.pair_weighting import multi_similarity_mining
from simtune.losses.multi_similarity_loss import MultiSimilarityLoss


def cosine(a, b):
    return torch.dot(a, b) / (a.norm() * b.norm())


def reference_multi_similarity(embeddings, groups, alpha, beta, base, epsilon):
    """The paper's equations, one anchor and one pair at a time. Mining (eq. 12-13): a negative is
    kept if s_n > min_p s_p - epsilon, a positive if s_p < max_n s_n + epsilon. Weighting (eq. 15):
    1/alpha log(1 + sum_p e^{-alpha (s_p - base)}) + 1/beta log(1 + sum_n e^{beta (s_n - base)}),
    averaged over all anchors."""
    total = 0.0
    for i in range(len(embeddings)):
        positives, negatives = [], []
        for j in range(len(embeddings)):
            if j != i:
                s = cosine(embeddings[i], embeddings[j])
                (positives if groups[j] == groups[i] else negatives).append(s)
        if epsilon is not None:
            least_similar_positive = min((s.item() for s in positives), default=float("inf"))
            most_similar_negative = max((s.item() for s in negatives), default=float("-inf"))
            kept_negatives = [s for s in negatives if s > least_similar_positive - epsilon]
            kept_positives = [s for s in positives if s < most_similar_negative + epsilon]
            positives, negatives = kept_positives, kept_negatives
        total = total + torch.log(1 + sum(torch.exp(-alpha * (s - base)) for s in positives)) / alpha
        total = total + torch.log(1 + sum(torch.exp(beta * (s - base)) for s in negatives)) / beta
    return total / len(embeddings)


def random_batch(seed, batch=12, dim=4, num_groups=3, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, dim, generator=generator, dtype=dtype, requires_grad=True)
    groups = torch.randint(0, num_groups, (batch,), generator=generator)
    return embeddings, groups


@pytest.mark.parametrize("epsilon", [0.1, 0.5, None])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_and_gradient_match_brute_force_definition(seed, epsilon):
    embeddings, groups = random_batch(seed)
    loss = MultiSimilarityLoss(alpha=2.0, beta=10.0, base=0.5, epsilon=epsilon)
    value = loss(embeddings, groups)
    expected = reference_multi_similarity(embeddings, groups, 2.0, 10.0, 0.5, epsilon)
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)
    grad = torch.autograd.grad(value, embeddings)[0]
    expected_grad = torch.autograd.grad(expected, embeddings)[0]
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=0)


def test_miner_drops_uninformative_pairs():
    # Guards the comparison above: mining with a small epsilon keeps strictly fewer pairs than all.
    embeddings, groups = random_batch(0)
    similarity = torch.nn.functional.normalize(embeddings, dim=1) @ torch.nn.functional.normalize(embeddings, dim=1).T
    mined_positive, mined_negative = multi_similarity_mining(similarity.detach(), groups, epsilon=0.1)
    same = groups[:, None] == groups[None, :]
    all_positive = same & ~torch.eye(len(groups), dtype=torch.bool)
    assert 0 < mined_negative.sum() < (~same).sum()
    assert 0 < mined_positive.sum() <= all_positive.sum()
    assert not (mined_positive & ~all_positive).any() and not (mined_negative & same).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pytorch_metric_learning_with_its_miner(seed):
    # Same conventions: PML's MultiSimilarityMiner(epsilon) feeds the mined pairs to
    # MultiSimilarityLoss(alpha, beta, base), whose MeanReducer averages over all anchors (anchors
    # with nothing mined add log(1) = 0), as ours does.
    embeddings, groups = random_batch(seed, batch=12, dim=8, num_groups=3, dtype=torch.float32)
    value = MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5, epsilon=0.1)(embeddings, groups)
    pairs = pml_miners.MultiSimilarityMiner(epsilon=0.1)(embeddings, groups)
    expected = pml_losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)(embeddings, groups, pairs)
    assert value.item() == pytest.approx(expected.item(), abs=1e-4)
    grad = torch.autograd.grad(value, embeddings)[0]
    expected_grad = torch.autograd.grad(expected, embeddings)[0]
    torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=0)


def test_matches_pytorch_metric_learning_without_mining():
    embeddings, groups = random_batch(4, batch=12, dim=8, num_groups=3, dtype=torch.float32)
    value = MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5, epsilon=None)(embeddings, groups)
    expected = pml_losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)(embeddings, groups)
    assert value.item() == pytest.approx(expected.item(), abs=1e-4)


@pytest.mark.parametrize("groups", [[0, 1, 2, 3], [5, 5, 5, 5], [7]])
def test_nothing_to_mine_gives_zero_and_zero_gradient(groups):
    # No positive (or no negative) pair: the miner has no reference pair, so nothing is mined.
    embeddings = torch.randn(len(groups), 6, requires_grad=True)
    value = MultiSimilarityLoss()(embeddings, torch.tensor(groups))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


@pytest.mark.parametrize("epsilon", [0.1, None])
@pytest.mark.parametrize("distance", ["cosine", "dot_product", "euclidean", "manhattan"])
def test_all_equal_embeddings_give_finite_loss_and_gradient(distance, epsilon):
    embeddings = torch.ones(6, 4, requires_grad=True)
    value = MultiSimilarityLoss(epsilon=epsilon, distance=distance)(embeddings, torch.tensor([0, 0, 1, 1, 2, 2]))
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert torch.isfinite(embeddings.grad).all()


def test_config_round_trips_through_json():
    loss = MultiSimilarityLoss(alpha=1.0, beta=40.0, base=0.6, epsilon=None, distance="euclidean")
    rebuilt = MultiSimilarityLoss(**json.loads(json.dumps(loss.get_config())))
    assert rebuilt.get_config() == loss.get_config()
    assert loss.get_config()["epsilon"] is None and loss.get_config()["distance"] == "euclidean"


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="alpha and beta"):
        MultiSimilarityLoss(beta=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        MultiSimilarityLoss(epsilon=-0.1)
