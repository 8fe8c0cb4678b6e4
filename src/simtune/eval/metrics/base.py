"""A retrieval metric is a named per-query score that ``simtune.functional.retrieval`` computes."""

from abc import ABC, abstractmethod


class RetrievalMetric(ABC):
    """Subclass and implement ``name``: the metric's name in ``retrieval_metrics`` and in results.

    Metrics only describe *what* to score; the functional layer scores every metric of an evaluation
    in one blockwise pass over the rankings, so adding metrics does not add passes over the gallery.
    Relevance comes from the sampler (same group, or explicit pairs), so every metric works with both.
    """

    @property
    @abstractmethod
    def name(self) -> str: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class RetrievalMetricAtK(RetrievalMetric):
    """A metric cut at the first ``k`` results."""

    prefix: str

    def __init__(self, k: int = 1):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = k

    @property
    def name(self) -> str:
        return f"{self.prefix}_at_{self.k}"
