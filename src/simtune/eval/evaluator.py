"""``Evaluator(metrics, sampler)`` + ``evaluate(evaluator, dataset, model)``: how well a model retrieves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from simtune.distances import Distance
from simtune.eval.metrics import RetrievalMetric, named_metrics
from simtune.eval.samplers import GroupSampler, RetrievalTask, Sampler
from simtune.functional.retrieval import (
    DEFAULT_MAX_MEMORY_MB,
    RetrievalResult,
    pair_retrieval_metrics,
    retrieval_metrics,
)


class Evaluator:
    """Which metrics, over which queries/gallery (the sampler), ranked how (distance, memory, device).

    ``metrics`` is one metric, a list, or ``{name: metric}`` (results then use those names), as in
    Quaterion. ``per_class`` adds ``"<metric>/class_<group>"`` entries (group tasks only).
    ``max_memory_mb`` bounds the ranking's working memory; the embeddings themselves come on top.
    ``batch_size`` and ``device`` default to the sampler's ``encode_batch_size`` and ``device``.
    """

    def __init__(
        self,
        metrics: RetrievalMetric | Sequence[RetrievalMetric] | Mapping[str, RetrievalMetric],
        sampler: Sampler | None = None,
        *,
        distance: str | Distance = "cosine",
        batch_size: int | None = None,
        per_class: bool = False,
        max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
        device: str | torch.device | None = None,
    ):
        named = named_metrics(metrics, "metrics")
        self.metrics = list(named.values())
        self.result_names = {metric.name: name for name, metric in named.items()}
        if sampler is not None and not isinstance(sampler, Sampler):
            raise TypeError(
                f"sampler must be a simtune Sampler (GroupSampler or PairSampler), got {type(sampler).__name__}"
            )
        self.sampler = sampler if sampler is not None else GroupSampler()
        self.distance = distance
        self.batch_size = batch_size if batch_size is not None else self.sampler.encode_batch_size
        self.per_class = per_class
        self.max_memory_mb = max_memory_mb
        self.device = device if device is not None else self.sampler.device

    def score(self, task: RetrievalTask, embeddings: torch.Tensor) -> RetrievalResult:
        """Metrics of a sampled task given the embeddings of ``task.objects`` (row-aligned)."""
        queries, gallery = embeddings[task.query_rows], embeddings[task.gallery_rows]
        options = dict(
            metrics=self.metrics,
            distance=self.distance,
            max_memory_mb=self.max_memory_mb,
            device=self.device,
            progress=self.sampler.log_progress,
        )
        if task.groups is not None:
            return retrieval_metrics(
                queries,
                task.groups[task.query_rows],
                gallery,
                task.groups[task.gallery_rows],
                query_gallery_index=task.query_gallery_index,
                per_class=self.per_class,
                **options,
            )
        if self.per_class:
            raise ValueError("per_class needs groups; this sampler gives pair relevance")
        return pair_retrieval_metrics(
            queries, task.relevant_pairs, gallery, excluded_pairs=task.excluded_pairs, **options
        )

    def evaluate(self, dataset: Sequence, model: Any, gallery_dataset: Sequence | None = None) -> dict[str, float]:
        dataset, model = dataset_and_model(dataset, model)
        task = self.sampler.sample(dataset, gallery_dataset)
        encoded = model.encode(task.objects, batch_size=self.batch_size, progress=self.sampler.log_progress)
        embeddings = torch.from_numpy(encoded) if isinstance(encoded, np.ndarray) else encoded.detach().cpu()
        if embeddings.ndim != 2 or len(embeddings) != len(task.objects):
            raise ValueError(f"model.encode returned shape {tuple(embeddings.shape)} for {len(task.objects)} objects")
        return {self._result_name(key): value for key, value in self.score(task, embeddings).as_dict().items()}

    def _result_name(self, key: str) -> str:
        metric, slash, rest = key.partition("/")
        return self.result_names.get(metric, metric) + slash + rest


def dataset_and_model(first: Any, second: Any) -> tuple[Any, Any]:
    """``(dataset, model)`` whichever order they came in: simtune and Quaterion take
    ``evaluate(evaluator, dataset, model)``, and a model has ``encode`` where a dataset has not."""
    if _encodes(first) and not _encodes(second):
        return second, first
    if not _encodes(second):
        hint = (
            "; a TrainableModel is not one: pass trainable_model.model"
            if callable(getattr(getattr(second, "model", None), "encode", None))
            else ""
        )
        raise TypeError(
            f"model must be a SimilarityModel (anything with encode(objects, batch_size=..., progress=...)), "
            f"got {type(second).__name__}{hint}; call evaluate(evaluator, dataset, model)"
        )
    return first, second


def _encodes(candidate: Any) -> bool:
    return callable(getattr(candidate, "encode", None))


def evaluate(
    evaluator: Evaluator, dataset: Sequence, model: Any, gallery_dataset: Sequence | None = None
) -> dict[str, float]:
    """Encodes the sampled objects with ``model.encode`` (progress bar) and returns
    ``{metric name: value, "num_queries": n, "num_queries_without_relevant": m}`` (+ per-class entries).

    ``dataset`` yields ``SimilarityGroupSample`` (with ``GroupSampler``) or ``SimilarityPairSample``
    (with ``PairSampler``); ``gallery_dataset`` gives group queries a separate gallery. ``dataset`` and
    ``model`` are told apart by type, so ``evaluate(evaluator, model, dataset)`` works too.
    """
    if not isinstance(evaluator, Evaluator):
        raise TypeError(
            f"evaluator must be an Evaluator(metrics, sampler), got {type(evaluator).__name__}; "
            "call evaluate(evaluator, dataset, model)"
        )
    return evaluator.evaluate(dataset, model, gallery_dataset)
