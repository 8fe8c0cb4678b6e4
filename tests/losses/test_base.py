"""The reference form of group losses (``GroupLoss.supports_references``), used by cross-batch memory."""

import pytest
import torch

from simtune.losses import (
    CircleLoss,
    GroupLoss,
    MultiSimilarityLoss,
    OnlineContrastiveLoss,
    ProxyAnchorLoss,
    SoftmaxLoss,
    TripletLoss,
)

REFERENCE_LOSSES = [
    MultiSimilarityLoss(),
    MultiSimilarityLoss(epsilon=None),
    TripletLoss(mining="all"),
    TripletLoss(mining="hard"),
    TripletLoss(mining="semi_hard"),
    OnlineContrastiveLoss(mining="all"),
    OnlineContrastiveLoss(mining="hard"),
    CircleLoss(),
]


def batch(seed, size=8, dim=5):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, dim, generator=generator, dtype=torch.float64), torch.arange(size) % 3


@pytest.mark.parametrize("loss", REFERENCE_LOSSES, ids=repr)
def test_no_references_is_the_plain_batch_loss(loss):
    embeddings, groups = batch(0)
    empty = embeddings[:0]
    torch.testing.assert_close(loss(embeddings, groups, empty, groups[:0]), loss(embeddings, groups))


def test_only_batch_rows_are_anchors():
    """Batch-hard triplet written out per anchor: references are candidate positives and negatives of
    the batch anchors, never anchors themselves, and a row is never its own positive."""
    loss = TripletLoss(margin=0.3, mining="hard", distance="euclidean")
    embeddings, groups = batch(0)
    references, ref_groups = batch(1, size=5)
    rows, row_groups = torch.cat([embeddings, references]), torch.cat([groups, ref_groups])
    expected = []
    for a in range(len(embeddings)):
        d = (rows - embeddings[a]).norm(dim=1)
        positive = [float(d[j]) for j in range(len(rows)) if j != a and row_groups[j] == groups[a]]
        negative = [float(d[j]) for j in range(len(rows)) if row_groups[j] != groups[a]]
        expected.append(max(max(positive) - min(negative) + 0.3, 0.0))
    actual = loss(embeddings, groups, references, ref_groups)
    assert float(actual) == pytest.approx(sum(expected) / len(expected), abs=1e-9)
    assert float(actual) != pytest.approx(float(loss(rows, row_groups)), abs=1e-6)  # not "references as anchors"


def test_gradients_reach_the_references_only_when_they_ask():
    embeddings, groups = batch(0)
    references, ref_groups = batch(1, size=5)
    embeddings.requires_grad_(True)
    MultiSimilarityLoss()(embeddings, groups, references, ref_groups).backward()
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0 and references.grad is None


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        ((torch.randn(3, 4), torch.zeros(3, dtype=torch.long)), "ref_embeddings must be \\(refs, 5\\)"),
        ((torch.randn(3, 5), torch.zeros(2, dtype=torch.long)), "ref_groups must be integer ids shaped \\(3,\\)"),
        ((torch.randn(3, 5), torch.zeros(3)), "ref_groups must be integer ids"),
        ((torch.randn(3, 5), None), "pass both or neither"),
    ],
)
def test_bad_references_are_named(refs, message):
    embeddings, groups = batch(0)
    with pytest.raises(ValueError, match=message):
        TripletLoss()(embeddings.float(), groups, *refs)


def test_which_losses_take_references():
    assert all(loss.supports_references for loss in REFERENCE_LOSSES)
    assert not GroupLoss.supports_references
    assert not ProxyAnchorLoss(num_groups=3, embedding_size=5).supports_references
    assert not SoftmaxLoss(num_groups=3, embedding_size=5).supports_references
