import json

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning import reducers as pml_reducers
from reference import assert_close, online_contrastive, value_and_grad

from simtune.losses import OnlineContrastiveLoss


def batch(seed, size=12, dim=5, classes=4):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(size, dim, generator=generator, dtype=torch.float64)
    return embeddings, torch.randint(0, classes, (size,), generator=generator)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("mining", ["all", "hard"])
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force_value_and_gradient(distance, mining, squared, seed):
    embeddings, groups = batch(seed)
    margin = 0.8 if distance == "cosine" else 3.0
    loss = OnlineContrastiveLoss(margin=margin, mining=mining, squared=squared, distance=distance)
    value, (grad,) = value_and_grad(lambda x: loss(x, groups), embeddings)
    expected, (expected_grad,) = value_and_grad(
        lambda x: online_contrastive(x, groups.tolist(), margin, mining, squared, distance), embeddings
    )
    assert value > 0
    assert_close(value, expected, 1e-5, "loss")
    assert_close(grad, expected_grad, 1e-5, "gradient")


# pytorch-metric-learning's ContrastiveLoss(pos_margin=0, neg_margin=m) with MeanReducer averages
# positive and negative pairs separately and adds them: our squared=False form. "all" is its
# no-miner default (all pairs); "hard" is BatchHardMiner's (anchor, hardest positive, hardest
# negative) triplets split into pairs, equal to ours when every anchor has a positive and a negative.
@pytest.mark.parametrize("mining", ["all", "hard"])
def test_matches_pytorch_metric_learning(mining):
    generator = torch.Generator().manual_seed(5)
    embeddings = torch.randn(24, 6, generator=generator, dtype=torch.float64)
    groups = torch.arange(6).repeat_interleave(4)
    distance = pml_distances.LpDistance(normalize_embeddings=False)
    pml_loss = pml_losses.ContrastiveLoss(
        pos_margin=0.0, neg_margin=3.0, distance=distance, reducer=pml_reducers.MeanReducer()
    )
    indices = pml_miners.BatchHardMiner(distance=distance)(embeddings, groups) if mining == "hard" else None
    expected = pml_loss(embeddings, groups, indices)
    actual = OnlineContrastiveLoss(margin=3.0, mining=mining, squared=False, distance="euclidean")(embeddings, groups)
    assert expected > 0
    assert_close(actual, expected, 1e-4, "online contrastive vs pytorch-metric-learning")


@pytest.mark.parametrize("mining", ["all", "hard"])
def test_an_anchor_is_never_its_own_negative(mining):
    # Every row is its own group and all rows are farther apart than the margin: no negative violates
    # it. Were a row its own (distance 0) negative, the loss would be margin^2.
    embeddings = torch.eye(5) * 10
    assert OnlineContrastiveLoss(margin=1.0, mining=mining, distance="euclidean")(embeddings, torch.arange(5)) == 0


def test_config_round_trips_through_json():
    loss = OnlineContrastiveLoss(margin=0.3, mining="batch_all", squared=False, distance="cosine")
    config = json.loads(json.dumps(loss.get_config()))
    assert (
        OnlineContrastiveLoss(**config).get_config()
        == config
        == {"distance": "cosine", "margin": 0.3, "mining": "all", "squared": False}
    )
    with pytest.raises(ValueError, match="mining"):
        OnlineContrastiveLoss(mining="semi_hard")


@pytest.mark.parametrize("mining", ["all", "hard"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_degenerate_batches_are_finite(mining, distance):
    for embeddings, groups, expected in [
        (torch.randn(5, 3), torch.zeros(5, dtype=torch.long), None),  # one class: only the positive term
        (torch.ones(6, 3), torch.tensor([0, 0, 1, 1, 2, 2]), 0.25),  # all equal: negatives at distance 0
    ]:
        embeddings.requires_grad_(True)
        value = OnlineContrastiveLoss(margin=0.5, mining=mining, distance=distance)(embeddings, groups)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(embeddings.grad).all()
        if expected is not None:
            assert value.item() == pytest.approx(expected, abs=1e-5)
