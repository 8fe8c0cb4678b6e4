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
    assert result == {
        "validation_r_precision": whole["r_precision"],
        "validation_precision_at_1": whole["precision_at_1"],
    }
    batch_average = (
        sum(
            retrieval_metrics(embeddings[b : b + 16], groups[b : b + 16], metrics=("r_precision",)).metrics[
                "r_precision"
            ]
            for b in range(0, 96, 16)
        )
        / 6
    )
    assert abs(batch_average - whole["r_precision"]) > 0.01


def test_reset_forgets_the_previous_epoch():
    embeddings, groups = validation_epoch()
    other, other_groups = validation_epoch(seed=1)
    metric = AttachedMetric([MeanAveragePrecisionAtR()], prefix="val")
    metric.update(embeddings, groups)
    metric.reset()
    metric.update(other, other_groups)
    assert (
        metric.compute()["val_map_at_r"]
        == retrieval_metrics(other, other_groups, metrics=("map_at_r",)).metrics["map_at_r"]
    )


def test_compute_before_update_and_bad_shapes_raise():
    metric = AttachedMetric([PrecisionAtK(1)])
    with pytest.raises(RuntimeError, match="before any update"):
        metric.compute()
    with pytest.raises(ValueError, match="embeddings \\(B, D\\) and groups \\(B,\\)"):
        metric.update(torch.zeros(4, 2), torch.zeros(3))


def test_quaterion_form_logs_under_validation_and_the_given_name():
    embeddings, groups = validation_epoch()
    metric = AttachedMetric("rrp", metric=RetrievalRPrecision(), prog_bar=True, on_epoch=True, on_step=False)
    metric.update(embeddings, groups)
    whole = retrieval_metrics(embeddings, groups, metrics=("r_precision",)).metrics["r_precision"]
    assert metric.compute() == {"validation_rrp": whole}
    assert metric.names == ["validation_rrp"]
    assert metric.log_options == {"prog_bar": True}


def test_a_name_with_several_metrics_prefixes_each_and_log_options_pass_through():
    embeddings, groups = validation_epoch()
    metric = AttachedMetric(
        "retrieval", metric={"p1": PrecisionAtK(1), "rp": RetrievalRPrecision()}, logger=False, sync_dist=True
    )
    metric.update(embeddings, groups)
    assert set(metric.compute()) == {"validation_retrieval_p1", "validation_retrieval_rp"}
    assert metric.log_options == {"prog_bar": True, "logger": False, "sync_dist": True}
    assert AttachedMetric(PrecisionAtK(1)).names == ["validation_precision_at_1"]


def test_quaterion_forms_simtune_cannot_honour_fail_at_the_call():
    with pytest.raises(ValueError, match="on_step=True is not supported.*once per validation epoch"):
        AttachedMetric("rrp", metric=RetrievalRPrecision(), on_step=True)
    with pytest.raises(ValueError, match="on_epoch=False"):
        AttachedMetric("rrp", metric=RetrievalRPrecision(), on_epoch=False)
    with pytest.raises(TypeError, match="needs metric="):
        AttachedMetric("rrp")
    with pytest.raises(TypeError, match="RetrievalMetric \\(e.g. RetrievalRPrecision\\(\\)\\)"):
        AttachedMetric("rrp", metric="r_precision")
