"""Samplers decide which objects query, which form the gallery, and what counts as relevant."""

from simtune.eval.samplers.base import RetrievalTask, Sampler
from simtune.eval.samplers.group_sampler import GroupSampler
from simtune.eval.samplers.pair_sampler import PairSampler

__all__ = ["RetrievalTask", "Sampler", "GroupSampler", "PairSampler"]
