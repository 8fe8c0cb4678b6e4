import json

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning import reducers as pml_reducers
from reference import assert_close, triplet, value_and_grad

from simtune.losses import TripletLoss


def batch(seed, size=12, dim=5, classes=4):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(size, dim, generator=generator, dtype=torch.float64)
    groups = torch.randint(0, classes, (size,), generator=generator)
    return embeddings, groups


@pytest.mark.parametrize("distance", ["cosine", "euclidean", "dot_product"])
@pytest.mark.parametrize(
    "mining,soft", [("all", False), ("hard", False), ("hard", True), ("semi_hard", False), ("semi_hard", True)]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_value_and_gradient(distance, mining, soft, seed):
    embeddings, groups = batch(seed)
    margin = 0.3 if distance == "cosine" else 1.0
    loss = TripletLoss(margin=margin, mining=mining, soft=soft, distance=distance)
    value, (grad,) = value_and_grad(lambda x: loss(x, groups), embeddings)
    expected, (expected_grad,) = value_and_grad(
        lambda x: triplet(x, groups.tolist(), margin, mining, soft, distance), embeddings
    )
    assert value > 0
    assert_close(value, expected, 1e-5, "loss")
    assert_close(grad, expected_grad, 1e-5, "gradient")


# pytorch-metric-learning conventions, mapped:
# - our "euclidean" is its LpDistance(normalize_embeddings=False) (its default normalises first);
#   our "cosine" distance 1 - cos is its CosineSimilarity, an inverted (similarity) "distance":
#   its margin(ap, an) = s_an - s_ap equals our d_ap - d_an.
# - batch-all: TripletMarginLoss with no miner, default AvgNonZeroReducer = mean over positive triplets.
# - batch-hard: BatchHardMiner; its default reducer averages non-zero triplets only, ours averages
#   over all anchors (Hermans et al.), so MeanReducer.
# - semi-hard: its BatchEasyHardMiner(pos_strategy="hard", neg_strategy="semihard") mines per anchor
#   (one positive); ours mines per anchor-positive pair (FaceNet). With two samples per class each
#   anchor has one positive and the two coincide, so this comparison uses K=2 batches; the brute-force
#   test above covers K > 2.
PML_DISTANCES = {
    "euclidean": pml_distances.LpDistance(normalize_embeddings=False),
    "cosine": pml_distances.CosineSimilarity(),
}


def pml_triplet(mining, margin, distance):
    if mining == "all":
        return pml_losses.TripletMarginLoss(margin=margin, distance=distance), None
    if mining == "hard":
        miner = pml_miners.BatchHardMiner(distance=distance)
    else:
        miner = pml_miners.BatchEasyHardMiner(pos_strategy="hard", neg_strategy="semihard", distance=distance)
    return pml_losses.TripletMarginLoss(margin=margin, distance=distance, reducer=pml_reducers.MeanReducer()), miner


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("mining", ["all", "hard", "semi_hard"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pytorch_metric_learning(distance, mining, seed):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(32, 8, generator=generator, dtype=torch.float64)
    groups = (
        torch.arange(16).repeat_interleave(2)
        if mining == "semi_hard"
        else torch.randint(0, 5, (32,), generator=generator)
    )
    margin = 0.2 if distance == "cosine" else 0.5
    pml_loss, miner = pml_triplet(mining, margin, PML_DISTANCES[distance])
    indices = None if miner is None else miner(embeddings, groups)
    expected = pml_loss(embeddings, groups, indices)
    actual = TripletLoss(margin=margin, mining=mining, distance=distance)(embeddings, groups)
    assert expected > 0
    assert_close(actual, expected, 1e-4, f"{mining}/{distance} vs pytorch-metric-learning")


@pytest.mark.parametrize("alias,canonical", [("batch_all", "all"), ("batch_hard", "hard")])
def test_tutorial_aliases(alias, canonical):
    embeddings, groups = batch(3)
    assert TripletLoss(mining=alias).mining == canonical
    assert torch.equal(TripletLoss(mining=alias)(embeddings, groups), TripletLoss(mining=canonical)(embeddings, groups))


def test_config_round_trips_through_json():
    loss = TripletLoss(margin=0.25, mining="batch_hard", soft=True, distance="euclidean")
    config = json.loads(json.dumps(loss.get_config()))
    rebuilt = TripletLoss(**config)
    assert (
        rebuilt.get_config()
        == loss.get_config()
        == {"distance": "euclidean", "margin": 0.25, "mining": "hard", "soft": True}
    )
    embeddings, groups = batch(4)
    assert torch.equal(rebuilt(embeddings, groups), loss(embeddings, groups))
    assert loss.trainable_parameters == []


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mining"):
        TripletLoss(mining="hardest")
    with pytest.raises(ValueError, match="soft"):
        TripletLoss(mining="all", soft=True)
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=-1)
    with pytest.raises(ValueError, match="groups"):
        TripletLoss()(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="groups"):
        TripletLoss()(torch.randn(4, 3), torch.zeros(4))


DEGENERATE = {
    "one class": (torch.randn(6, 4), torch.zeros(6, dtype=torch.long)),
    "no positive pair": (torch.randn(6, 4), torch.arange(6)),
    "all-equal embeddings": (torch.ones(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])),
}


@pytest.mark.parametrize("case", sorted(DEGENERATE))
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("mining,soft", [("all", False), ("hard", False), ("hard", True), ("semi_hard", False)])
def test_degenerate_batches_give_finite_loss_and_gradient(case, distance, mining, soft):
    embeddings, groups = DEGENERATE[case]
    embeddings = embeddings.clone().requires_grad_(True)
    value = TripletLoss(margin=0.5, mining=mining, soft=soft, distance=distance)(embeddings, groups)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(embeddings.grad).all()
    if case != "all-equal embeddings":
        assert value == 0 and not embeddings.grad.any()
    elif mining == "hard":
        # every distance is equal: nothing separates positives from negatives, the margin is all violation
        assert value.item() == pytest.approx(
            torch.nn.functional.softplus(torch.tensor(0.0)).item() if soft else 0.5, abs=1e-5
        )


def scaled_batch_hard(x, groups, margin, dist):
    """Quaterion's batch-hard written out anchor by anchor: relu((d_ap - d_an) / mean(d_an) + margin)
    over the anchors that have a positive and a negative."""
    from reference import distance, relu

    n = len(x)
    d = [[distance(dist, x[i], x[j]) for j in range(n)] for i in range(n)]
    gaps, hardest_negatives = [], []
    for a in range(n):
        positives = [p for p in range(n) if p != a and groups[p] == groups[a]]
        negatives = [k for k in range(n) if groups[k] != groups[a]]
        if positives and negatives:
            d_ap = max((d[a][p] for p in positives), key=lambda t: t.item())
            d_an = min((d[a][k] for k in negatives), key=lambda t: t.item())
            gaps.append(d_ap - d_an)
            hardest_negatives.append(d_an)
    if not gaps:
        return torch.tensor(0.0, dtype=torch.float64)
    mean_negative = sum(hardest_negatives) / len(hardest_negatives)
    return sum(relu(gap / mean_negative + margin) for gap in gaps) / len(gaps)


def quaterion_batch_hard(embeddings, groups, margin):
    """Quaterion 0.1's TripletLoss(mining="hard")._hard_triplet_loss, transcribed (its cosine
    distance_matrix is (1 - cos) / 2; its masks exclude the diagonal from positives)."""
    normalized = torch.nn.functional.normalize(embeddings, dim=1)
    dists = 1 - (normalized @ normalized.T + 1) / 2
    same = groups[:, None] == groups[None, :]
    positive = (same & ~torch.eye(len(groups), dtype=torch.bool)).float()
    negative = (~same).float()
    hardest_positive = (positive * dists).max(dim=1)[0]
    hardest_negative = (dists + dists.max(dim=1, keepdim=True)[0] * (1.0 - negative)).min(dim=1)[0]
    return torch.relu((hardest_positive - hardest_negative) / hardest_negative.mean() + margin).mean()


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_negative_scale_matches_brute_force_value_and_gradient(distance, seed):
    embeddings, groups = batch(seed)
    loss = TripletLoss(margin=0.5, mining="hard", distance=distance, scale="mean_negative")
    value, (grad,) = value_and_grad(lambda x: loss(x, groups), embeddings)
    expected, (expected_grad,) = value_and_grad(
        lambda x: scaled_batch_hard(x, groups.tolist(), 0.5, distance), embeddings
    )
    assert value > 0
    assert_close(value, expected, 1e-6, "loss")
    assert_close(grad, expected_grad, 1e-6, "gradient")
    textbook = TripletLoss(margin=0.5, mining="hard", distance=distance)(embeddings, groups)
    assert not torch.isclose(value, textbook), "the scaled form must differ from the textbook one"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_negative_scale_equals_quaterion_batch_hard(seed):
    # every anchor has a positive (4 classes x 8), which is where both conventions coincide
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(32, 6, generator=generator, dtype=torch.float64)
    groups = torch.arange(4).repeat_interleave(8)[torch.randperm(32, generator=generator)]
    value, (grad,) = value_and_grad(lambda x: TripletLoss(margin=0.5, scale="mean_negative")(x, groups), embeddings)
    expected, (expected_grad,) = value_and_grad(lambda x: quaterion_batch_hard(x, groups, 0.5), embeddings)
    assert_close(value, expected, 1e-9, "loss vs Quaterion")
    assert_close(grad, expected_grad, 1e-9, "gradient vs Quaterion")


def test_mean_negative_scale_with_references_keeps_batch_rows_as_anchors():
    embeddings, groups = batch(5)
    ref_embeddings, ref_groups = batch(6, size=7)
    loss = TripletLoss(scale="mean_negative", distance="euclidean")
    value = loss(embeddings, groups, ref_embeddings, ref_groups)
    # the references join the columns only; a brute force over all rows as anchors would differ
    everything = torch.cat([embeddings, ref_embeddings])
    all_groups = torch.cat([groups, ref_groups])
    columns_only = scaled_batch_hard_with_references(embeddings, groups, everything, all_groups)
    assert_close(value, columns_only, 1e-9, "batch rows vs batch + references")


def scaled_batch_hard_with_references(anchors, groups, columns, column_groups):
    from reference import distance, relu

    gaps, negatives_found = [], []
    for a in range(len(anchors)):
        others = [c for c in range(len(columns)) if c != a]
        d = {c: distance("euclidean", anchors[a], columns[c]) for c in others}
        positives = [d[c] for c in others if column_groups[c] == groups[a]]
        negatives = [d[c] for c in others if column_groups[c] != groups[a]]
        if positives and negatives:
            gaps.append(max(positives, key=lambda t: t.item()) - min(negatives, key=lambda t: t.item()))
            negatives_found.append(min(negatives, key=lambda t: t.item()))
    mean_negative = sum(negatives_found) / len(negatives_found)
    return sum(relu(gap / mean_negative + 0.5) for gap in gaps) / len(gaps)


def test_mean_negative_scale_config_and_bad_combinations():
    loss = TripletLoss(margin=0.5, scale="mean_negative")
    assert TripletLoss(**json.loads(json.dumps(loss.get_config()))).scale == "mean_negative"
    assert "scale" not in TripletLoss().get_config()
    with pytest.raises(ValueError, match="scale"):
        TripletLoss(scale="mean")
    with pytest.raises(ValueError, match="mining='hard'"):
        TripletLoss(mining="all", scale="mean_negative")
    with pytest.raises(ValueError, match="soft=False"):
        TripletLoss(soft=True, scale="mean_negative")


def test_mean_negative_scale_is_finite_when_all_embeddings_are_equal():
    embeddings = torch.ones(6, 4, requires_grad=True)
    value = TripletLoss(scale="mean_negative", distance="euclidean")(embeddings, torch.tensor([0, 0, 1, 1, 2, 2]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(embeddings.grad).all()
    assert value.item() == pytest.approx(0.5, abs=1e-5)
