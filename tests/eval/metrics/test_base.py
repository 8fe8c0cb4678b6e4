import math

import pytest
import torch

from simtune.eval import AttachedMetric, Evaluator, RegisteredMetric, evaluate
from simtune.eval.metrics import NDCGAtK, PrecisionAtK, RecallAtK, RetrievalMetric
from simtune.functional import retrieval
from simtune.functional.retrieval import register_metric, retrieval_metrics


def test_names_are_the_keys_of_results():
    assert [m.name for m in (PrecisionAtK(5), RecallAtK(10), NDCGAtK(3))] == [
        "precision_at_5",
        "recall_at_10",
        "ndcg_at_3",
    ]


class PrecisionAtHalfR(RetrievalMetric):
    """A user's metric: relevant items among the first ceil(R / 2) results, over ceil(R / 2)."""

    name = "precision_at_half_r"
    depth = "r"

    def score(self, ranked):
        half = torch.ceil(ranked.num_relevant / 2)
        within = ranked.positions()[None, :] <= half[:, None]
        return (ranked.relevant & within).sum(1) / half


def precision_at_half_r_by_loops(embeddings, groups):
    """Plain loops: each query's others ranked by (squared euclidean distance, index)."""
    values = []
    for q in range(len(embeddings)):
        order = sorted(
            (float(((embeddings[q] - embeddings[g]) ** 2).sum()), g) for g in range(len(embeddings)) if g != q
        )
        hits = [groups[g] == groups[q] for _, g in order]
        r = sum(hits)
        if r:
            half = math.ceil(r / 2)
            values.append(sum(hits[:half]) / half)
    return sum(values) / len(values)


def integer_embeddings(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 3, (70, 3), generator=generator).float(), torch.randint(0, 5, (70,), generator=generator)


def test_a_users_metric_subclass_matches_a_brute_force_loop_in_every_entry_point(lookup_model):
    embeddings, groups = integer_embeddings()
    expected = precision_at_half_r_by_loops(embeddings, groups.tolist())
    direct = retrieval_metrics(embeddings, groups, metrics=[PrecisionAtHalfR(), "precision_at_1"], distance="euclidean")
    assert direct.metrics["precision_at_half_r"] == pytest.approx(expected, abs=1e-12)

    attached = AttachedMetric([PrecisionAtHalfR()], prefix="val", distance="euclidean")
    attached.update(embeddings, groups)
    assert attached.compute()["val_precision_at_half_r"] == pytest.approx(expected, abs=1e-12)

    from simtune.data.samples import SimilarityGroupSample

    dataset = [SimilarityGroupSample(obj=i, group=int(g)) for i, g in enumerate(groups)]
    model = lookup_model(lambda i: embeddings[i].numpy())
    result = evaluate(Evaluator([PrecisionAtHalfR()], distance="euclidean"), dataset, model)
    assert result["precision_at_half_r"] == pytest.approx(expected, abs=1e-12)


def test_a_registered_function_is_a_metric_by_name(monkeypatch):
    monkeypatch.setattr(retrieval, "_REGISTERED", dict(retrieval._REGISTERED))
    register_metric("precision_at_half_r", depth="r")(PrecisionAtHalfR().score)
    embeddings, groups = integer_embeddings(seed=1)
    expected = precision_at_half_r_by_loops(embeddings, groups.tolist())
    by_name = retrieval_metrics(embeddings, groups, metrics=["precision_at_half_r"], distance="euclidean")
    assert by_name.metrics["precision_at_half_r"] == pytest.approx(expected, abs=1e-12)
    assert RegisteredMetric("precision_at_half_r").depth == "r"


def test_a_registered_family_takes_any_k(monkeypatch):
    monkeypatch.setattr(retrieval, "_REGISTERED", dict(retrieval._REGISTERED))
    register_metric("hits_at_{k}")(lambda ranked, k: ranked.relevant[:, :k].sum(1).double())
    embeddings, groups = integer_embeddings(seed=2)
    result = retrieval_metrics(embeddings, groups, metrics=["hits_at_3", "precision_at_3"], distance="euclidean")
    num_relevant = torch.tensor([int((groups == g).sum()) - 1 for g in groups])
    assert torch.equal(result.per_query["hits_at_3"], result.per_query["precision_at_3"] * num_relevant.clamp(max=3))


def test_a_metric_without_name_or_depth_is_refused():
    class Nameless(RetrievalMetric):
        depth = 0

        def score(self, ranked):
            return ranked.num_relevant

    with pytest.raises(ValueError, match="has a name, a score and a depth"):
        retrieval_metrics(torch.zeros(4, 1), torch.tensor([0, 0, 1, 1]), metrics=[Nameless()])
    with pytest.raises(ValueError, match="depth must be a positive integer or 'r'"):
        register_metric("no_depth")
