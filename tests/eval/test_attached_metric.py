import pytest
import torch

from simtune.eval import AttachedMetric, MeanAveragePrecisionAtR, PrecisionAtK, RetrievalRPrecision
from simtune.functional.retrieval import retrieval_metrics


def validation_epoch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    groups = torch.randint(0, 8, (96,), generator=generator)
    embeddings = torch.randn(8, 16, generator=generator)[groups] + 0.9 * torch.randn(96, 16, generator=generator)
    return embeddings, groups


def test_computes_once_over_the_whole_epoch_not_per_batch():
    embeddings, groups = validation_epoch()
    metric = AttachedMetric([RetrievalRPrecision(), PrecisionAtK(1)], prefix="validation")
    for batch in range(0, 96, 16):
        metric.update(embeddings[batch : batch + 16].requires_grad_(), groups[batch : batch + 16])
    whole = retrieval_metrics(embeddings, groups, metrics=("r_precision", "precision_at_1")).metrics
    result = metric.compute()
    assert result == {"validation_r_precision": whole["r_precision"], "validation_precision_at_1": whole["precision_at_1"]}
    batch_average = sum(
        retrieval_metrics(embeddings[b : b + 16], groups[b : b + 16], metrics=("r_precision",)).metrics["r_precision"]
        for b in range(0, 96, 16)
    ) / 6
    assert abs(batch_average - whole["r_precision"]) > 0.01


def test_reset_forgets_the_previous_epoch():
    embeddings, groups = validation_epoch()
    other, other_groups = validation_epoch(seed=1)
    metric = AttachedMetric([MeanAveragePrecisionAtR()], prefix="val")
    metric.update(embeddings, groups)
    metric.reset()
    metric.update(other, other_groups)
    assert metric.compute()["val_map_at_r"] == retrieval_metrics(other, other_groups, metrics=("map_at_r",)).metrics["map_at_r"]


def test_compute_before_update_and_bad_shapes_raise():
    metric = AttachedMetric([PrecisionAtK(1)])
    with pytest.raises(RuntimeError, match="before any update"):
        metric.compute()
    with pytest.raises(ValueError, match="embeddings \\(B, D\\) and groups \\(B,\\)"):
        metric.update(torch.zeros(4, 2), torch.zeros(3))
