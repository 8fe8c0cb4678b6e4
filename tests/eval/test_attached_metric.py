import pytest
import torch

from simtune.eval import (
    AttachedMetric,
    MeanAveragePrecisionAtR,
    PrecisionAtK,
    RetrievalPrecision,
    RetrievalReciprocalRank,
    RetrievalRPrecision,
)
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
    with pytest.raises(TypeError, match="a metric is a registered name .* or a RetrievalMetric, got 3"):
        AttachedMetric("rrp", metric=3)
    with pytest.raises(TypeError, match="pass a metric instance, RetrievalRPrecision\\(\\), not the class"):
        AttachedMetric("rrp", metric=RetrievalRPrecision)


def test_a_metric_is_named_by_its_registered_name_or_given_as_a_retrieval_metric():
    embeddings, groups = validation_epoch()
    by_name, by_class = AttachedMetric("rrp", metric="r_precision"), AttachedMetric("rrp", metric=RetrievalRPrecision())
    alone = AttachedMetric("precision_at_1")
    for metric in (by_name, by_class, alone):
        metric.update(embeddings, groups)
    assert by_name.compute() == by_class.compute()
    assert alone.compute() == {
        "validation_precision_at_1": retrieval_metrics(embeddings, groups, metrics=("precision_at_1",)).metrics[
            "precision_at_1"
        ]
    }


def pair_epoch(seed=0, pairs=40, dim=8):
    """Question/answer-like pairs: each answer is its question plus noise, laid out as PairCollate does
    (all first objects, then all second objects), in two batches."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.randn(pairs, dim, generator=generator)
    second = first + 0.8 * torch.randn(pairs, dim, generator=generator)
    subgroups = torch.arange(pairs) // 4 + 1  # every 4 pairs share a subgroup: never each other's negatives
    return first, second, subgroups


def pair_retrieval_by_loops(objects, partner, subgroup):
    """Plain loops: each row ranks every other row not sharing its non-zero subgroup, by cosine."""
    normed = torch.nn.functional.normalize(objects, dim=1)
    reciprocal, top1 = [], []
    for q in range(len(objects)):
        others = [g for g in range(len(objects)) if g != q and (g == partner[q] or subgroup[g] != subgroup[q])]
        order = sorted(others, key=lambda g: (-float(normed[q] @ normed[g]), g))
        rank = order.index(partner[q]) + 1
        reciprocal.append(1 / rank)
        top1.append(float(rank == 1))
    return sum(reciprocal) / len(reciprocal), sum(top1) / len(top1)


def test_pair_data_gives_reciprocal_rank_and_precision_over_the_whole_epoch():
    first, second, subgroups = pair_epoch()
    metric = AttachedMetric([RetrievalReciprocalRank(), RetrievalPrecision(k=1)])
    objects, partner, subgroup = [], [], []
    for start in (0, 20):
        a, b, s = first[start : start + 20], second[start : start + 20], subgroups[start : start + 20]
        rows = torch.arange(20)
        metric.update(
            torch.cat([a, b]),
            pairs=torch.stack([rows, rows + 20], 1),
            labels=torch.ones(20),
            subgroups=torch.cat([s, s]),
        )
        base = len(objects)
        objects += [*a, *b]
        partner += [base + 20 + i for i in range(20)] + [base + i for i in range(20)]
        subgroup += [*s.tolist(), *s.tolist()]
    mrr, precision = pair_retrieval_by_loops(torch.stack(objects), partner, subgroup)
    result = metric.compute()
    assert result["validation_mrr"] == pytest.approx(mrr, abs=1e-12)
    assert result["validation_precision_at_1"] == pytest.approx(precision, abs=1e-12)
    assert 0.3 < mrr < 1  # neither trivial nor hopeless, so the comparison means something


def test_pair_updates_are_checked():
    metric = AttachedMetric(["mrr"])
    with pytest.raises(ValueError, match="groups .* or pairs=.*exactly one"):
        metric.update(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="row indices below 4"):
        metric.update(torch.zeros(4, 2), pairs=torch.tensor([[0, 4]]))
    metric.update(torch.randn(4, 2), pairs=torch.tensor([[0, 2], [1, 3]]))
    with pytest.raises(ValueError, match="cannot mix"):
        metric.update(torch.randn(4, 2), torch.zeros(4))
