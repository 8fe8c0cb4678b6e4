import json

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers as pml_reducers
from reference import assert_close, contrastive, value_and_grad

from simtune.losses import ContrastiveLoss


def pair_batch(seed, num_pairs=6, dim=5):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(2 * num_pairs, dim, generator=generator, dtype=torch.float64)
    pairs = torch.stack([torch.arange(num_pairs), torch.arange(num_pairs) + num_pairs], dim=1)
    labels = torch.rand(num_pairs, generator=generator, dtype=torch.float64).round()
    labels[0], labels[1] = 1.0, 0.0
    return embeddings, pairs, labels, torch.zeros(2 * num_pairs, dtype=torch.long)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("soft_labels", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force_value_and_gradient(distance, squared, soft_labels, seed):
    embeddings, pairs, labels, subgroups = pair_batch(seed)
    if soft_labels:
        labels = torch.linspace(0, 1, len(labels), dtype=torch.float64)
    margin = 0.8 if distance == "cosine" else 3.0
    loss = ContrastiveLoss(margin=margin, squared=squared, distance=distance)
    value, (grad,) = value_and_grad(lambda x: loss(x, pairs, labels, subgroups), embeddings)
    expected, (expected_grad,) = value_and_grad(
        lambda x: contrastive(x, pairs, labels, margin, squared, distance), embeddings
    )
    assert value > 0
    assert_close(value, expected, 1e-5, "loss")
    assert_close(grad, expected_grad, 1e-5, "gradient")


# pytorch-metric-learning's ContrastiveLoss(pos_margin=0, neg_margin=m) is our squared=False hinge
# form. It takes pairs as an indices tuple (positive anchors, positives, negative anchors, negatives)
# and reduces positive and negative pairs separately; with SumReducer both are plain sums, so its
# value is ours (a mean over all P pairs) times P.
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_matches_pytorch_metric_learning(distance):
    embeddings, pairs, labels, subgroups = pair_batch(2, num_pairs=10)
    margin = 0.8 if distance == "cosine" else 3.0
    positive, negative = pairs[labels == 1], pairs[labels == 0]
    indices = (positive[:, 0], positive[:, 1], negative[:, 0], negative[:, 1])
    pml_distance = (
        pml_distances.CosineSimilarity()
        if distance == "cosine"
        else pml_distances.LpDistance(normalize_embeddings=False)
    )
    if distance == "cosine":  # its similarity margins: pos relu(margin - s), neg relu(s - margin); map d = 1 - s
        pml_loss = pml_losses.ContrastiveLoss(
            pos_margin=1.0, neg_margin=1.0 - margin, distance=pml_distance, reducer=pml_reducers.SumReducer()
        )
    else:
        pml_loss = pml_losses.ContrastiveLoss(
            pos_margin=0.0, neg_margin=margin, distance=pml_distance, reducer=pml_reducers.SumReducer()
        )
    expected = pml_loss(embeddings, torch.zeros(len(embeddings), dtype=torch.long), indices) / len(pairs)
    actual = ContrastiveLoss(margin=margin, squared=False, distance=distance)(embeddings, pairs, labels, subgroups)
    assert expected > 0
    assert_close(actual, expected, 1e-4, "contrastive vs pytorch-metric-learning")


def test_config_round_trips_through_json():
    loss = ContrastiveLoss(margin=0.7, squared=False, distance="euclidean")
    config = json.loads(json.dumps(loss.get_config()))
    assert (
        ContrastiveLoss(**config).get_config() == config == {"distance": "euclidean", "margin": 0.7, "squared": False}
    )


def test_bad_inputs_are_named():
    embeddings, pairs, labels, subgroups = pair_batch(0)
    with pytest.raises(ValueError, match="pairs"):
        ContrastiveLoss()(embeddings, pairs[:, :1], labels, subgroups)
    with pytest.raises(ValueError, match="pairs index rows"):
        ContrastiveLoss()(embeddings, pairs + 100, labels, subgroups)
    with pytest.raises(ValueError, match="labels"):
        ContrastiveLoss()(embeddings, pairs, labels[:-1], subgroups)
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=-0.1)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_degenerate_batches_are_finite(distance):
    embeddings = torch.ones(4, 3, requires_grad=True)
    pairs = torch.tensor([[0, 2], [1, 3]])
    value = ContrastiveLoss(distance=distance)(
        embeddings, pairs, torch.tensor([1.0, 1.0]), torch.zeros(4, dtype=torch.long)
    )
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-6) and torch.isfinite(embeddings.grad).all()
    empty = ContrastiveLoss(distance=distance)(
        embeddings, torch.zeros(0, 2, dtype=torch.long), torch.zeros(0), torch.zeros(4, dtype=torch.long)
    )
    assert empty == 0
