"""Exact retrieval metrics from one blockwise ranking pass (simtune.functional.ranking: its memory
bound, and its ranking rule, ties by gallery index).

A metric is a function of each query's ranked relevance (``RankedRelevance``: which of its first
results are relevant, and its number R of relevant items), registered by name with
``register_metric`` (the built-ins below register the same way), or any object with a ``name``, a
``depth`` and a ``score`` (simtune.eval's ``RetrievalMetric``). Each query is ranked exactly as deep
as its metrics read: the deepest fixed depth, or its own R where that is larger and a metric reads
the first R, capped by the gallery size. Per-query scores are kept; averages are macro (per query).
A query with R = 0 has no defined score: it is counted, excluded from every average, and reported
in ``RetrievalResult.num_queries_without_relevant``.

Registered: ``"r_precision"``, ``"map_at_r"``, ``"mrr"`` and ``"precision_at_K"``,
``"recall_at_K"``, ``"ndcg_at_K"`` for a positive integer K.

- r_precision: relevant items among the first R results, divided by R.
- map_at_r: (1 / R) * sum over the first R positions i that are relevant of precision@i.
- precision_at_K: relevant items among the first K, divided by min(K, R), so a perfect ranking
  scores 1.0 even for a query with fewer than K relevant items (the OpenMetricLearning convention).
- recall_at_K: 1 if any relevant item is among the first K, else 0 (hit rate, CMC@K).
- ndcg_at_K: binary-relevance DCG@K over the ideal DCG of min(K, R) relevant items.
- mrr: 1 / rank of the first relevant item over the WHOLE ranking (exact, not cut at a depth: a
  query whose first relevant item lies deeper is ranked against its full gallery row, recomputed).

pytorch-metric-learning's ``AccuracyCalculator`` gives the same r_precision, map_at_r (its
``mean_average_precision_at_r``), precision_at_1 and mrr (its ``mean_reciprocal_rank``) with
``distance="euclidean"`` (faiss ranks by squared L2): ``get_accuracy(x, labels)`` = our call without a
gallery (its ``ref_includes_query`` also drops the query's own row by index), ``get_accuracy(q, ql, g,
gl, False)`` = our separate gallery. Its MRR only sees its k results (0 when none is relevant), so it
equals ours with ``k=None``; with ``k="max_bin_count"`` R-based metrics and precision_at_1 still agree.
Its exact ties (duplicate embeddings) are ordered by faiss, not by index.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from simtune.distances import Distance
from simtune.functional.ranking import DEFAULT_MAX_MEMORY_MB, RankingKey, full_row_keys, prepare_ranking, ranked

DEFAULT_METRICS = ("r_precision", "map_at_r", "precision_at_1", "recall_at_10", "mrr", "ndcg_at_10")


@dataclass
class RetrievalResult:
    """Macro averages, the per-query scores behind them, and how many queries had nothing to find."""

    metrics: dict[str, float]
    per_query: dict[str, Tensor]  # float64, NaN for queries without a relevant item
    num_queries: int
    num_queries_without_relevant: int
    per_class: dict[str, dict[int, float]] = field(default_factory=dict)

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat ``{prefix_name: value}``: metrics, query counts and ``name/class_G`` per-class entries."""
        head = f"{prefix}_" if prefix else ""
        flat = {f"{head}{name}": value for name, value in self.metrics.items()}
        flat[f"{head}num_queries"] = float(self.num_queries)
        flat[f"{head}num_queries_without_relevant"] = float(self.num_queries_without_relevant)
        for name, classes in self.per_class.items():
            flat.update({f"{head}{name}/class_{group}": value for group, value in classes.items()})
        return flat


# ---------------------------------------------------------------- metrics: per-query scores of a ranking


@dataclass
class RankedRelevance:
    """What a metric scores: whether each query's ranked results are relevant, and how many
    relevant items it has (R >= 1; queries with R = 0 are never scored)."""

    relevant: Tensor  # (Q, depth) bool in rank order, False past the depth the query was ranked to
    num_relevant: Tensor  # (Q,) float64
    _first_relevant_beyond: Callable[[Tensor], Tensor] = field(repr=False)

    def positions(self) -> Tensor:
        """1, 2, ..., depth (float64): the ranks of ``relevant``'s columns."""
        return torch.arange(1, self.relevant.shape[1] + 1, device=self.relevant.device, dtype=torch.float64)

    def first_relevant_rank(self) -> Tensor:
        """Exact 1-based rank of each query's first relevant item in its WHOLE ranking: a query with
        none in ``relevant`` is ranked against its full gallery row (recomputed, so a metric that
        needs it can ask for depth 1)."""
        found = self.relevant.any(1)
        ranks = torch.where(found, self.relevant.byte().argmax(1) + 1, 0)
        beyond = (~found).nonzero()[:, 0]
        if len(beyond):
            ranks[beyond] = self._first_relevant_beyond(beyond)
        return ranks


@dataclass(frozen=True)
class MetricDefinition:
    """A metric by name: ``score(ranked) -> (Q,)`` float64 per query, from each query's first
    ``depth`` results (an int), or its first R (``depth="r"``)."""

    name: str
    score: Callable[[RankedRelevance], Tensor]
    depth: int | str


_REGISTERED: dict[str, tuple[Callable[..., Tensor], int | str | None]] = {}
_AT_K = re.compile(r"^(?P<family>.+_at)_(?P<k>[1-9][0-9]*)$")


def _is_depth(depth: object) -> bool:
    return depth == "r" or (isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1)


def register_metric(name: str, depth: int | str | None = None) -> Callable:
    """Registers ``function(ranked) -> Tensor`` as metric ``name`` (``depth``: how many results it
    reads, an int, or "r" for each query's first R). A name ending in ``_at_{k}`` registers a family,
    ``function(ranked, k)`` at depth k: ``"precision_at_{k}"`` gives "precision_at_1", "precision_at_5", ..."""
    family = name.endswith("_at_{k}")
    if not family and not _is_depth(depth):
        raise ValueError(f"metric {name!r}: depth must be a positive integer or 'r', got {depth!r}")

    def register(function: Callable[..., Tensor]) -> Callable[..., Tensor]:
        _REGISTERED[name.removesuffix("_{k}") if family else name] = (function, None if family else depth)
        return function

    return register


def resolve_metric(metric: str | MetricDefinition) -> MetricDefinition:
    """A registered metric's definition by name; anything with ``name``, ``score`` and ``depth``
    (e.g. a simtune.eval RetrievalMetric) is taken as it is."""
    if not isinstance(metric, str):
        named = isinstance(getattr(metric, "name", None), str) and callable(getattr(metric, "score", None))
        if not named or not _is_depth(getattr(metric, "depth", None)):
            raise ValueError(
                f"a metric is a registered name or has a name, a score and a depth (a positive integer or 'r'), "
                f"got {metric!r}"
            )
        return metric
    if metric in _REGISTERED and _REGISTERED[metric][1] is not None:
        function, depth = _REGISTERED[metric]
        return MetricDefinition(metric, function, depth)
    match = _AT_K.match(metric)
    if match and _REGISTERED.get(match["family"], (None, 0))[1] is None:
        function, k = _REGISTERED[match["family"]][0], int(match["k"])
        return MetricDefinition(metric, lambda ranked: function(ranked, k), k)
    names = sorted(name + ("_K" if depth is None else "") for name, (_, depth) in _REGISTERED.items())
    raise ValueError(f"unknown metric {metric!r}; registered: {', '.join(names)} (K a positive integer)")


@register_metric("r_precision", depth="r")
def r_precision(ranked: RankedRelevance) -> Tensor:
    """Relevant items among the first R results, over R."""
    within_r = ranked.positions()[None, :] <= ranked.num_relevant[:, None]
    return (ranked.relevant & within_r).sum(1).double() / ranked.num_relevant


@register_metric("map_at_r", depth="r")
def map_at_r(ranked: RankedRelevance) -> Tensor:
    """(1 / R) * sum over the first R positions i that are relevant of precision@i."""
    positions = ranked.positions()
    hits = (ranked.relevant & (positions[None, :] <= ranked.num_relevant[:, None])).double()
    # summed by cumsum in rank order: the same value however many columns past R the block holds
    at_r = ranked.num_relevant.long().clamp(max=len(positions))[:, None] - 1
    return (hits.cumsum(1) / positions * hits).cumsum(1).gather(1, at_r)[:, 0] / ranked.num_relevant


@register_metric("precision_at_{k}")
def precision_at_k(ranked: RankedRelevance, k: int) -> Tensor:
    """Relevant items among the first k over min(k, R): a perfect ranking scores 1."""
    return ranked.relevant[:, :k].sum(1).double() / ranked.num_relevant.clamp(max=k)


@register_metric("recall_at_{k}")
def recall_at_k(ranked: RankedRelevance, k: int) -> Tensor:
    """1 if any relevant item is among the first k, else 0 (hit rate, CMC@k)."""
    return ranked.relevant[:, :k].any(1).double()


@register_metric("ndcg_at_{k}")
def ndcg_at_k(ranked: RankedRelevance, k: int) -> Tensor:
    """Binary-relevance DCG@k over the ideal DCG of min(k, R) relevant items."""
    discounts = 1.0 / torch.log2(ranked.positions()[:k] + 1.0)
    # Both sums by cumsum in rank order, so a perfect ranking gives exactly dcg == ideal.
    dcg = (ranked.relevant[:, :k].double() * discounts).cumsum(1)[:, -1]
    ideal = torch.cat([discounts.new_zeros(1), discounts.cumsum(0)])
    return dcg / ideal[ranked.num_relevant.long().clamp(max=min(k, ranked.relevant.shape[1]))]


@register_metric("mrr", depth=1)
def mrr(ranked: RankedRelevance) -> Tensor:
    """1 / rank of the first relevant item in the whole ranking."""
    return 1.0 / ranked.first_relevant_rank().double()


# ---------------------------------------------------------------- relevance sources


class _GroupRelevance:
    """Relevant = same group; a query's own gallery entry is excluded, so it is never relevant."""

    def __init__(self, query_groups: Tensor, gallery_groups: Tensor, query_gallery_index: Tensor):
        self.query_groups = query_groups
        self.gallery_groups = gallery_groups
        self.query_gallery_index = query_gallery_index
        values, counts = torch.unique(gallery_groups, return_counts=True)
        position = torch.searchsorted(values, query_groups).clamp(max=len(values) - 1)
        in_gallery = values[position] == query_groups
        counted_self = (query_gallery_index >= 0) & (gallery_groups[query_gallery_index.clamp(min=0)] == query_groups)
        self.num_relevant = torch.where(in_gallery, counts[position], 0) - counted_self.long()

    def of_ranked(self, rows: Tensor, indices: Tensor) -> Tensor:
        same = self.gallery_groups[indices] == self.query_groups[rows, None]
        return same & (indices != self.query_gallery_index[rows, None])

    def of_gallery(self, rows: Tensor) -> Tensor:
        same = self.query_groups[rows, None] == self.gallery_groups[None, :]
        own = self.query_gallery_index[rows]
        has_own = own >= 0
        same[has_own.nonzero()[:, 0], own[has_own]] = False
        return same


class _PairRelevance:
    """Relevant = listed in ``relevant_pairs`` as (query index, gallery index)."""

    def __init__(self, relevant_pairs: Tensor, num_queries: int, num_gallery: int):
        self.num_gallery = num_gallery
        self.keys = torch.unique(relevant_pairs[:, 0] * num_gallery + relevant_pairs[:, 1])
        self.num_relevant = torch.bincount(self.keys // num_gallery, minlength=num_queries)

    def of_ranked(self, rows: Tensor, indices: Tensor) -> Tensor:
        return _contains(self.keys, rows[:, None] * self.num_gallery + indices)

    def of_gallery(self, rows: Tensor) -> Tensor:
        return _contains(self.keys, rows[:, None] * self.num_gallery + torch.arange(self.num_gallery))


def _contains(sorted_keys: Tensor, keys: Tensor) -> Tensor:
    if len(sorted_keys) == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    position = torch.searchsorted(sorted_keys, keys).clamp(max=len(sorted_keys) - 1)
    return sorted_keys[position] == keys


# ---------------------------------------------------------------- the one-pass metric set


def _definitions(metrics: Sequence[str | MetricDefinition]) -> list[MetricDefinition]:
    if isinstance(metrics, str) or len(metrics) == 0:
        raise ValueError(f"metrics must be a non-empty sequence of metrics or their names, got {metrics!r}")
    definitions = [resolve_metric(metric) for metric in metrics]
    names = [definition.name for definition in definitions]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics must have distinct names, got {names}")
    return definitions


def _check_embeddings(name: str, embeddings: Tensor) -> None:
    if not isinstance(embeddings, Tensor) or embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(f"{name} must be a non-empty 2-D tensor (N, D), got {_describe(embeddings)}")
    if not embeddings.is_floating_point() or not torch.isfinite(torch.stack(torch.aminmax(embeddings))).all():
        raise ValueError(f"{name} must hold finite floating-point values")


def _describe(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


def _score(
    queries: Tensor,
    gallery: Tensor,
    relevance: _GroupRelevance | _PairRelevance,
    metrics: Sequence[str | MetricDefinition],
    excluded_pairs: Tensor,
    *,
    leave_one_out: bool,
    distance: str | Distance,
    max_memory_mb: float,
    device: str | torch.device | None,
    progress: bool,
) -> tuple[dict[str, Tensor], Tensor]:
    """Per-query scores from one ranking pass at the depth the metrics need (``leave_one_out``:
    ``gallery`` is ``queries`` and ``excluded_pairs`` are exactly each query's own entry)."""
    definitions = _definitions(metrics)
    num_relevant = relevance.num_relevant
    # each query's depth: the deepest fixed one, or its R where larger and a metric reads the first R
    depths = torch.full_like(num_relevant, max([d.depth for d in definitions if d.depth != "r"], default=1))
    if any(d.depth == "r" for d in definitions):
        depths = torch.maximum(depths, num_relevant)
    depths = depths.clamp(1, len(gallery))
    queries, key = prepare_ranking(queries, None if leave_one_out else gallery, distance, device)
    excluded_pairs = excluded_pairs[excluded_pairs[:, 0].argsort(stable=True)]
    budget = max_memory_mb * 2**20
    scores = {d.name: torch.full((len(queries),), math.nan, dtype=torch.float64) for d in definitions}
    for block in ranked(queries, key, depths, excluded_pairs, leave_one_out, budget, progress):
        indices = block.top_indices
        rows = block.rows[num_relevant[block.rows] > 0]
        indices = indices[num_relevant[block.rows] > 0]
        hits = relevance.of_ranked(rows, indices.clamp(min=0)) & (indices >= 0)

        def first_relevant_beyond(local: Tensor, rows: Tensor = rows) -> Tensor:
            return _first_relevant_rank_in_full_rows(queries, key, relevance, excluded_pairs, rows[local], budget)

        ranking = RankedRelevance(hits, num_relevant[rows].double(), first_relevant_beyond)
        for definition in definitions:
            scores[definition.name][rows] = definition.score(ranking).double().cpu()
    return scores, num_relevant


def _first_relevant_rank_in_full_rows(
    queries: Tensor, key: RankingKey, relevance, excluded_pairs: Tensor, rows: Tensor, budget: float
) -> Tensor:
    """Exact first relevant rank of queries with none in their top-k: their whole key rows,
    recomputed in chunks, rank the first relevant item against every other."""
    rows, order = rows.sort()
    ranks = torch.zeros(len(rows), dtype=torch.long)
    chunk = max(1, int(budget // (len(key.gallery) * (3 * key.gallery.element_size() + 2))))
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        distances = full_row_keys(queries, key, part, excluded_pairs)
        relevant = relevance.of_gallery(part).to(distances.device)
        best = distances.masked_fill(~relevant, math.inf).argmin(1, keepdim=True)  # first of equals
        best_distance = distances.gather(1, best)
        gallery_index = torch.arange(distances.shape[1], device=distances.device)
        ahead = (distances < best_distance) | ((distances == best_distance) & (gallery_index < best))
        ranks[start : start + chunk] = (ahead.sum(1) + 1).cpu()
    return ranks[order.argsort()]


def _result(scores: dict[str, Tensor], num_relevant: Tensor, groups: Tensor | None) -> RetrievalResult:
    valid = num_relevant > 0
    metrics = {name: float(value[valid].mean()) if valid.any() else math.nan for name, value in scores.items()}
    per_class = {}
    if groups is not None:
        present, members = torch.unique(groups[valid], return_inverse=True)
        sizes = torch.bincount(members, minlength=len(present)).double()
        per_class = {
            name: dict(zip(present.tolist(), (torch.bincount(members, value[valid], len(present)) / sizes).tolist()))
            for name, value in scores.items()
        }
    return RetrievalResult(metrics, scores, len(num_relevant), int((~valid).sum()), per_class)


def retrieval_metrics(
    query_embeddings: Tensor,
    query_groups: Tensor,
    gallery_embeddings: Tensor | None = None,
    gallery_groups: Tensor | None = None,
    *,
    query_gallery_index: Tensor | None = None,
    metrics: Sequence[str | MetricDefinition] = DEFAULT_METRICS,
    distance: str | Distance = "cosine",
    per_class: bool = False,
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> RetrievalResult:
    """Group retrieval metrics (relevant = same group) for every query in one blockwise pass.

    Without a gallery, the queries are the gallery and each is excluded from its own results.
    With a separate gallery, ``query_gallery_index[i]`` is query i's row in the gallery (its own
    entry, excluded from its results) or -1 when the query is not in the gallery (the default).
    A gallery equal to the queries with ``query_gallery_index`` = 0..N-1 (the Evaluator's full
    leave-one-out task) is ranked like no gallery, by the cheaper symmetric pass.
    """
    _check_embeddings("query_embeddings", query_embeddings)
    query_groups = _check_groups("query_groups", query_groups, len(query_embeddings))
    if gallery_embeddings is None:
        if gallery_groups is not None or query_gallery_index is not None:
            raise ValueError("gallery_groups/query_gallery_index need gallery_embeddings")
        gallery_embeddings, gallery_groups = query_embeddings, query_groups
        query_gallery_index = torch.arange(len(query_embeddings))
    else:
        _check_gallery(gallery_embeddings, query_embeddings)
    gallery_groups = _check_groups("gallery_groups", gallery_groups, len(gallery_embeddings))
    if query_gallery_index is None:
        query_gallery_index = torch.full((len(query_embeddings),), -1)
    query_gallery_index = _check_index(
        "query_gallery_index", query_gallery_index, len(query_embeddings), len(gallery_embeddings)
    )
    own = query_gallery_index >= 0
    if (gallery_groups[query_gallery_index[own]] != query_groups[own]).any():
        raise ValueError("query_gallery_index points some queries at gallery rows of another group")
    excluded = torch.stack([own.nonzero()[:, 0], query_gallery_index[own]], 1)
    leave_one_out = gallery_embeddings is query_embeddings or (
        len(gallery_embeddings) == len(query_embeddings)
        and torch.equal(query_gallery_index, torch.arange(len(query_embeddings)))
        and torch.equal(gallery_embeddings, query_embeddings)
    )
    relevance = _GroupRelevance(query_groups, gallery_groups, query_gallery_index)
    scores, num_relevant = _score(
        query_embeddings,
        gallery_embeddings,
        relevance,
        metrics,
        excluded,
        leave_one_out=leave_one_out,
        distance=distance,
        max_memory_mb=max_memory_mb,
        device=device,
        progress=progress,
    )
    return _result(scores, num_relevant, query_groups if per_class else None)


def pair_retrieval_metrics(
    query_embeddings: Tensor,
    relevant_pairs: Tensor,
    gallery_embeddings: Tensor | None = None,
    *,
    excluded_pairs: Tensor | None = None,
    metrics: Sequence[str | MetricDefinition] = ("precision_at_1", "mrr"),
    distance: str | Distance = "cosine",
    max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> RetrievalResult:
    """Retrieval metrics with relevance from explicit (query index, gallery index) pairs.

    Without a gallery, the queries are the gallery and each query's own entry is excluded.
    ``excluded_pairs`` (query, gallery) are removed from the ranking (e.g. same-subgroup objects).
    """
    _check_embeddings("query_embeddings", query_embeddings)
    num_queries = len(query_embeddings)
    excluded = _check_pairs("excluded_pairs", excluded_pairs, num_queries, None)
    leave_one_out = gallery_embeddings is None and len(excluded) == 0
    if gallery_embeddings is None:
        gallery_embeddings = query_embeddings
        own = torch.arange(num_queries)
        excluded = torch.cat([excluded, torch.stack([own, own], 1)])
    else:
        _check_gallery(gallery_embeddings, query_embeddings)
    relevant_pairs = _check_pairs("relevant_pairs", relevant_pairs, num_queries, len(gallery_embeddings))
    if (
        len(excluded)
        and _contains(
            torch.unique(relevant_pairs[:, 0] * len(gallery_embeddings) + relevant_pairs[:, 1]),
            excluded[:, 0] * len(gallery_embeddings) + excluded[:, 1],
        ).any()
    ):
        raise ValueError("a relevant pair is also excluded (or pairs a query with its own gallery entry)")
    relevance = _PairRelevance(relevant_pairs, num_queries, len(gallery_embeddings))
    scores, num_relevant = _score(
        query_embeddings,
        gallery_embeddings,
        relevance,
        metrics,
        excluded,
        leave_one_out=leave_one_out,
        distance=distance,
        max_memory_mb=max_memory_mb,
        device=device,
        progress=progress,
    )
    return _result(scores, num_relevant, None)


def _check_gallery(gallery_embeddings: Tensor, query_embeddings: Tensor) -> None:
    _check_embeddings("gallery_embeddings", gallery_embeddings)
    if gallery_embeddings.shape[1] != query_embeddings.shape[1]:
        raise ValueError(
            f"gallery_embeddings have {gallery_embeddings.shape[1]} dimensions, "
            f"query_embeddings {query_embeddings.shape[1]}"
        )


def _check_groups(name: str, groups: Tensor | None, length: int) -> Tensor:
    groups = torch.as_tensor(groups) if groups is not None else None
    if groups is None or groups.shape != (length,) or groups.is_floating_point() or groups.is_complex():
        raise ValueError(f"{name} must be an integer tensor of shape ({length},), got {_describe(groups)}")
    return groups.long().cpu()


def _check_index(name: str, index: Tensor, length: int, gallery_size: int) -> Tensor:
    index = torch.as_tensor(index).long().cpu()
    if index.shape != (length,) or (index < -1).any() or (index >= gallery_size).any():
        raise ValueError(f"{name} must be ({length},) gallery rows in [-1, {gallery_size}), got {_describe(index)}")
    taken = index[index >= 0]
    if len(torch.unique(taken)) != len(taken):
        raise ValueError(f"{name} points two queries at the same gallery row")
    return index


def _check_pairs(name: str, pairs: Tensor | None, num_queries: int, num_gallery: int | None) -> Tensor:
    if pairs is None:
        return torch.zeros(0, 2, dtype=torch.long)
    pairs = torch.as_tensor(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.is_floating_point():
        raise ValueError(f"{name} must be an integer tensor (P, 2) of (query, gallery) indices, got {_describe(pairs)}")
    pairs = pairs.long().cpu()
    limit = num_gallery if num_gallery is not None else num_queries
    if len(pairs) and ((pairs < 0).any() or (pairs[:, 0] >= num_queries).any() or (pairs[:, 1] >= limit).any()):
        raise ValueError(f"{name} holds indices outside the {num_queries} queries / gallery")
    return pairs
