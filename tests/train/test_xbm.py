import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning import reducers as pml_reducers
from train_fakes import TinyTrainable

from simtune.losses import CircleLoss, MultiSimilarityLoss, OnlineContrastiveLoss, ProxyAnchorLoss, TripletLoss
from simtune.train import XbmConfig
from simtune.train.xbm import CrossBatchMemory

# (simtune loss, the pytorch-metric-learning loss and miner with the same definition and reduction)
AGREEING_LOSSES = {
    "multi_similarity": lambda: (
        MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5, epsilon=0.1),
        pml_losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5),
        pml_miners.MultiSimilarityMiner(epsilon=0.1),
    ),
    "triplet_batch_all": lambda: (
        TripletLoss(margin=0.2, mining="all"),
        pml_losses.TripletMarginLoss(margin=0.2, distance=pml_distances.CosineSimilarity()),
        None,
    ),
    "online_contrastive_all": lambda: (
        OnlineContrastiveLoss(margin=1.0, mining="all", squared=False, distance="euclidean"),
        pml_losses.ContrastiveLoss(
            pos_margin=0.0,
            neg_margin=1.0,
            distance=pml_distances.LpDistance(normalize_embeddings=False),
            reducer=pml_reducers.MeanReducer(),
        ),
        None,
    ),
    "circle": lambda: (
        CircleLoss(m=0.4, gamma=80.0),
        pml_losses.CircleLoss(m=0.4, gamma=80.0),
        None,
    ),
}


def labelled_batch(seed: int, size: int = 8, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, dim, generator=generator), torch.arange(size) % 4  # 2 rows per group


@pytest.mark.parametrize("name", sorted(AGREEING_LOSSES))
def test_memory_term_matches_pytorch_metric_learning_cross_batch_memory(name):
    ours, theirs, miner = AGREEING_LOSSES[name]()
    reference = pml_losses.CrossBatchMemory(theirs, embedding_size=8, memory_size=64, miner=miner)
    model = TinyTrainable(xbm=XbmConfig(buffer_size=64, start_iteration=0, weight=1.0))
    model.loss = ours
    for step in range(3):  # distinct samples each step, so no older copy of a batch sample is remembered
        embeddings, groups = labelled_batch(step)
        expected = reference(embeddings, groups)
        term = model._xbm_loss(embeddings, {"groups": groups, "indices": torch.arange(8) + 8 * step})
        assert abs(float(term) - float(expected)) <= 1e-5, (step, float(term), float(expected))


def test_an_older_embedding_of_a_batch_sample_is_left_out():
    model = TinyTrainable(xbm=XbmConfig(buffer_size=64, start_iteration=0, weight=1.0), mining="all")
    embeddings, groups = labelled_batch(0)
    indices = torch.arange(8)
    model._xbm_loss(embeddings + 0.3, {"groups": groups, "indices": indices})  # the same samples, an epoch ago
    term = model._xbm_loss(embeddings, {"groups": groups, "indices": indices})
    torch.testing.assert_close(term, model.loss(embeddings, groups))  # no reference left: the batch alone
    other = model._xbm_loss(embeddings, {"groups": groups, "indices": indices + 100})
    assert not torch.isclose(other, term)  # different samples with the same groups do count


def test_memory_is_a_ring_of_the_latest_rows():
    memory = CrossBatchMemory(XbmConfig(buffer_size=10, start_iteration=0), embedding_size=2)
    batches = [torch.full((4, 2), float(i)) for i in range(3)]
    for i, batch in enumerate(batches):
        memory.enqueue(batch, torch.full((4,), i), torch.arange(4) + 4 * i)
    embeddings, groups, indices = memory.contents()
    assert len(embeddings) == 10
    assert sorted(groups.tolist()) == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]  # the oldest two rows were overwritten
    assert torch.equal(embeddings[:, 0].long(), groups) and torch.equal(indices // 4, groups)


def test_memory_term_starts_late_and_gradients_reach_only_the_batch():
    model = TinyTrainable(xbm=XbmConfig(buffer_size=32, start_iteration=0, weight=0.5))
    groups = torch.tensor([0, 0, 1, 1])
    first = torch.randn(4, 8)
    model._xbm_loss(first, {"groups": groups, "indices": torch.arange(4)})
    second = torch.randn(4, 8, requires_grad=True)
    term = model._xbm_loss(second, {"groups": groups, "indices": torch.arange(4, 8)})
    torch.testing.assert_close(term, 0.5 * model.loss(second, groups, first, groups))
    term.backward()
    assert second.grad is not None and model.xbm.embeddings.grad is None

    late = TinyTrainable(xbm=XbmConfig(buffer_size=32, start_iteration=5))
    assert float(late._xbm_loss(second, {"groups": groups, "indices": torch.arange(4)})) == 0.0  # step 0 < 5
    assert late.xbm.contents()[0].shape[0] == 4  # but the batch is remembered


def test_memory_needs_dataset_indices():
    model = TinyTrainable(xbm=XbmConfig(buffer_size=32, start_iteration=0))
    with pytest.raises(ValueError, match="targets\\['indices'\\]"):
        model._xbm_loss(torch.randn(4, 8), {"groups": torch.tensor([0, 0, 1, 1])})


@pytest.mark.parametrize("kwargs", [{"buffer_size": 0}, {"start_iteration": -1}, {"weight": -1.0}])
def test_bad_config_is_named(kwargs):
    with pytest.raises(ValueError, match=f"XbmConfig.{next(iter(kwargs))}"):
        XbmConfig(**kwargs)


def test_xbm_needs_a_loss_that_takes_references():
    with pytest.raises(ValueError, match="supports_references"):
        TinyTrainable(pairs=True, xbm=XbmConfig())

    class ProxyTrainable(TinyTrainable):
        def configure_loss(self):
            return ProxyAnchorLoss(num_groups=4, embedding_size=8)

    with pytest.raises(ValueError, match="ProxyAnchorLoss"):
        ProxyTrainable(xbm=XbmConfig())
