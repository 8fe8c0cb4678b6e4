import json

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses
from reference import assert_close, multiple_negatives_ranking, value_and_grad

from simtune.losses import MultipleNegativesRankingLoss


def pair_batch(seed, num_pairs=6, dim=5, subgroups=False):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(2 * num_pairs, dim, generator=generator, dtype=torch.float64)
    pairs = torch.stack([torch.arange(num_pairs), torch.arange(num_pairs) + num_pairs], dim=1)
    labels = torch.ones(num_pairs, dtype=torch.float64)
    if subgroups:
        per_pair = torch.tensor([0, 1, 1, 2, 2, 2, 0, 3][:num_pairs])
        return embeddings, pairs, labels, torch.cat([per_pair, per_pair])
    return embeddings, pairs, labels, torch.zeros(2 * num_pairs, dtype=torch.long)


@pytest.mark.parametrize("distance", ["cosine", "dot_product", "euclidean"])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("subgroups", [False, True])
def test_matches_brute_force_value_and_gradient(distance, symmetric, subgroups):
    embeddings, pairs, labels, subgroup_ids = pair_batch(0, subgroups=subgroups)
    scale = 5.0 if distance == "cosine" else 1.0
    loss = MultipleNegativesRankingLoss(scale=scale, symmetric=symmetric, distance=distance)
    value, (grad,) = value_and_grad(lambda x: loss(x, pairs, labels, subgroup_ids), embeddings)
    expected, (expected_grad,) = value_and_grad(
        lambda x: multiple_negatives_ranking(x, pairs, subgroup_ids.tolist(), scale, symmetric, distance), embeddings
    )
    assert value > 0
    assert_close(value, expected, 1e-5, "loss")
    assert_close(grad, expected_grad, 1e-5, "gradient")


def test_subgroup_members_are_not_negatives():
    embeddings, pairs, labels, _ = pair_batch(1)
    same = torch.ones(len(embeddings), dtype=torch.long)  # one subgroup: nobody is anyone's negative
    assert MultipleNegativesRankingLoss()(embeddings, pairs, labels, same).item() == pytest.approx(0.0, abs=1e-12)


# NT-Xent (pytorch-metric-learning's NTXentLoss, temperature t) ~ MNRL with scale = 1/t: given labels,
# NT-Xent treats every other row (a's and b's) as a negative. MNRL compares a_i only with the b's, so
# the test hands NT-Xent that restriction as an indices tuple: positives (a_i, b_i), negatives (a_i, b_j);
# symmetric adds (b_i, a_i) and (b_i, a_j). Its mean over positive pairs is then our cross-entropy.
@pytest.mark.parametrize("symmetric", [False, True])
def test_matches_pytorch_metric_learning_ntxent(symmetric):
    num_pairs, scale = 8, 10.0
    embeddings, pairs, labels, subgroups = pair_batch(2, num_pairs=num_pairs, dim=6)
    a, b = pairs[:, 0], pairs[:, 1]
    i, j = torch.meshgrid(torch.arange(num_pairs), torch.arange(num_pairs), indexing="ij")
    off_diagonal = i != j
    anchors, positives, negative_anchors, negatives = a, b, a[i[off_diagonal]], b[j[off_diagonal]]
    if symmetric:
        anchors, positives = torch.cat([a, b]), torch.cat([b, a])
        negative_anchors = torch.cat([negative_anchors, b[i[off_diagonal]]])
        negatives = torch.cat([negatives, a[j[off_diagonal]]])
    expected = pml_losses.NTXentLoss(temperature=1 / scale)(
        embeddings, None, (anchors, positives, negative_anchors, negatives)
    )
    actual = MultipleNegativesRankingLoss(scale=scale, symmetric=symmetric)(embeddings, pairs, labels, subgroups)
    assert expected > 0
    assert_close(actual, expected, 1e-4, "MNRL vs NT-Xent")


def test_config_and_bad_inputs():
    loss = MultipleNegativesRankingLoss(scale=30.0, symmetric=True, distance="dot_product")
    config = json.loads(json.dumps(loss.get_config()))
    assert (
        MultipleNegativesRankingLoss(**config).get_config()
        == config
        == {"distance": "dot_product", "scale": 30.0, "symmetric": True}
    )
    embeddings, pairs, labels, subgroups = pair_batch(0)
    labels[2] = 0.0
    with pytest.raises(ValueError, match="labels must all be > 0"):
        loss(embeddings, pairs, labels, subgroups)
    with pytest.raises(ValueError, match="subgroups"):
        loss(embeddings, pairs, torch.ones(len(pairs)), subgroups[:3])
    with pytest.raises(ValueError, match="scale"):
        MultipleNegativesRankingLoss(scale=0)


def test_degenerate_batches_are_finite():
    embeddings = torch.ones(6, 4, requires_grad=True)
    pairs = torch.tensor([[0, 3], [1, 4], [2, 5]])
    value = MultipleNegativesRankingLoss()(embeddings, pairs, torch.ones(3), torch.zeros(6, dtype=torch.long))
    value.backward()
    assert value.item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), abs=1e-5)  # all candidates tie
    assert torch.isfinite(embeddings.grad).all()
    single = torch.randn(2, 4, requires_grad=True)
    one_pair = MultipleNegativesRankingLoss()(
        single, torch.tensor([[0, 1]]), torch.ones(1), torch.zeros(2, dtype=torch.long)
    )
    one_pair.backward()
    assert one_pair.item() == pytest.approx(0.0, abs=1e-6) and not single.grad.any()


def test_quaterion_form_equals_quaterions_half_shifted_cosine():
    """Quaterion: logits = scale * (cos + 1) / 2, cross-entropy both ways when symmetric."""
    embeddings, pairs, labels, subgroups = pair_batch(3, num_pairs=8)
    first, second = embeddings[pairs[:, 0]], embeddings[pairs[:, 1]]
    cos = torch.nn.functional.normalize(first, dim=1) @ torch.nn.functional.normalize(second, dim=1).T
    logits = 20.0 * (cos + 1) / 2
    targets = torch.arange(len(pairs))
    cross_entropy = torch.nn.functional.cross_entropy
    expected = (cross_entropy(logits, targets) + cross_entropy(logits.T, targets)) / 2
    ported = MultipleNegativesRankingLoss.quaterion(scale=20, symmetric=True)
    assert ported.scale == 10.0
    assert torch.allclose(ported(embeddings, pairs, labels, subgroups), expected, atol=1e-12)
    assert not torch.allclose(
        MultipleNegativesRankingLoss(symmetric=True)(embeddings, pairs, labels, subgroups), expected
    )
