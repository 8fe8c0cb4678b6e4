"""``Evaluator(metrics, sampler)`` + ``evaluate(evaluator, dataset, model)``: how well a model retrieves."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from simtune.distances import Distance
from simtune.eval.metrics import RetrievalMetric
from simtune.eval.samplers import GroupSampler, RetrievalTask, Sampler
from simtune.functional.retrieval import (
    DEFAULT_MAX_MEMORY_MB,
    RetrievalResult,
    pair_retrieval_metrics,
    retrieval_metrics,
)


class Evaluator:
    """Which metrics, over which queries/gallery (the sampler), ranked how (distance, memory, device).

    ``per_class`` adds ``"<metric>/class_<group>"`` entries (group tasks only). ``max_memory_mb``
    bounds the ranking's working memory; the embeddings themselves come on top.
    """

    def __init__(
        self,
        metrics: Sequence[RetrievalMetric],
        sampler: Sampler | None = None,
        *,
        distance: str | Distance = "cosine",
        batch_size: int = 32,
        per_class: bool = False,
        max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
        device: str | torch.device | None = None,
    ):
        metrics = list(metrics)
        if not metrics or not all(isinstance(metric, RetrievalMetric) for metric in metrics):
            raise ValueError(f"metrics must be a non-empty list of RetrievalMetric, got {metrics!r}")
        names = [metric.name for metric in metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metrics must have distinct names, got {names}")
        self.metrics = metrics
        self.sampler = sampler if sampler is not None else GroupSampler()
        self.distance = distance
        self.batch_size = batch_size
        self.per_class = per_class
        self.max_memory_mb = max_memory_mb
        self.device = device

    def score(self, task: RetrievalTask, embeddings: torch.Tensor) -> RetrievalResult:
        """Metrics of a sampled task given the embeddings of ``task.objects`` (row-aligned)."""
        queries, gallery = embeddings[task.query_rows], embeddings[task.gallery_rows]
        options = dict(
            metrics=self.metrics,
            distance=self.distance,
            max_memory_mb=self.max_memory_mb,
            device=self.device,
            progress=True,
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
        task = self.sampler.sample(dataset, gallery_dataset)
        encoded = model.encode(task.objects, batch_size=self.batch_size, progress=True)
        embeddings = torch.from_numpy(encoded) if isinstance(encoded, np.ndarray) else encoded.detach().cpu()
        if embeddings.ndim != 2 or len(embeddings) != len(task.objects):
            raise ValueError(
                f"model.encode returned shape {tuple(embeddings.shape)} for {len(task.objects)} objects"
            )
        return self.score(task, embeddings).as_dict()


def evaluate(
    evaluator: Evaluator, dataset: Sequence, model: Any, gallery_dataset: Sequence | None = None
) -> dict[str, float]:
    """Encodes the sampled objects with ``model.encode`` (progress bar) and returns
    ``{metric name: value, "num_queries": n, "num_queries_without_relevant": m}`` (+ per-class entries).

    ``dataset`` yields ``SimilarityGroupSample`` (with ``GroupSampler``) or ``SimilarityPairSample``
    (with ``PairSampler``); ``gallery_dataset`` gives group queries a separate gallery.
    """
    return evaluator.evaluate(dataset, model, gallery_dataset)
