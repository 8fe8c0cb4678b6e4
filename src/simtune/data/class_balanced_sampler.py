"""P classes x K samples per batch, so every batch holds positives for mining losses."""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Yields batches of dataset indices: ``classes_per_batch`` distinct classes, ``samples_per_class`` each.

    Classes are visited in a shuffled round-robin, so over an epoch every class appears about equally
    often whatever ``batches_per_epoch`` is (default: enough batches to draw each usable sample about
    once). A class with fewer than K samples contributes all of them plus random repeats; a class with
    a single sample has no positive for itself and is skipped (with a warning counting them).

    Deterministic per ``(seed, epoch)``. Each pass over the sampler uses the next epoch, and
    ``set_epoch`` (called by Lightning and by distributed loops) pins it.

    Distributed (DDP): every process draws the same global batch of ``num_replicas x classes_per_batch``
    classes and keeps its own ``classes_per_batch`` of them, so the processes' batches are disjoint and
    together are exactly the batch one process would draw with ``num_replicas`` times the classes
    (mining losses gather them). ``num_replicas`` and ``rank`` default to the process group's, read
    when iterating (it does not exist yet when the sampler is built). Lightning cannot inject its own
    sampler into this one: train with ``Trainer(use_distributed_sampler=False)``, which
    ``simtune.fit``'s default trainer sets. ``batches_per_epoch`` counts per process; the default
    draws each usable sample about once per epoch across all processes.
    """

    def __init__(
        self,
        labels: Sequence[int],
        classes_per_batch: int,
        samples_per_class: int,
        batches_per_epoch: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        if samples_per_class < 2:
            raise ValueError(f"samples_per_class must be >= 2 so each batch has positives, got {samples_per_class}")
        if classes_per_batch < 2:
            raise ValueError(f"classes_per_batch must be >= 2 so each batch has negatives, got {classes_per_batch}")
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1 or None, got {batches_per_epoch}")
        if (num_replicas is None) != (rank is None):
            raise ValueError("num_replicas and rank go together; pass both or neither (the process group's)")
        if num_replicas is not None and not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        members: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            members[int(label)].append(index)
        singletons = [label for label, indices in members.items() if len(indices) < 2]
        if singletons:
            warnings.warn(
                f"ClassBalancedBatchSampler skips {len(singletons)} classes with a single sample "
                "(they have no positive pair)",
                stacklevel=2,
            )
        self.class_members = {
            label: np.asarray(indices) for label, indices in sorted(members.items()) if len(indices) >= 2
        }
        if len(self.class_members) < classes_per_batch:
            raise ValueError(
                f"classes_per_batch={classes_per_batch} but labels have only {len(self.class_members)} classes "
                "with at least two samples"
            )
        self.classes_per_batch = classes_per_batch
        self.samples_per_class = samples_per_class
        self.batch_size = classes_per_batch * samples_per_class
        self.usable_samples = sum(len(indices) for indices in self.class_members.values())
        self.requested_batches = batches_per_epoch
        self.seed = seed
        self.epoch = 0
        self._replicas = None if num_replicas is None else (num_replicas, rank)

    def replicas(self) -> tuple[int, int]:
        """``(num_replicas, rank)``: as given, else the process group's, else ``(1, 0)``."""
        if self._replicas is not None:
            return self._replicas
        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    @property
    def batches_per_epoch(self) -> int:
        num_replicas, _ = self.replicas()
        return self.requested_batches or max(1, self.usable_samples // (self.batch_size * num_replicas))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        num_replicas, rank = self.replicas()
        global_classes = self.classes_per_batch * num_replicas
        if global_classes > len(self.class_members):
            raise ValueError(
                f"classes_per_batch={self.classes_per_batch} on {num_replicas} processes needs {global_classes} "
                f"classes with at least two samples; labels have {len(self.class_members)}"
            )
        mine = slice(rank * self.classes_per_batch, (rank + 1) * self.classes_per_batch)
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        classes = list(self.class_members)
        queue: list[int] = []
        for _ in range(self.batches_per_epoch):
            chosen: list[int] = []
            while len(chosen) < global_classes:
                if not queue:
                    queue = [classes[i] for i in rng.permutation(len(classes))]
                label = queue.pop()
                if label in chosen:  # only at a reshuffle boundary; put it back for the next batch
                    queue.insert(0, label)
                    continue
                chosen.append(label)
            # Every process draws every class, so the generators stay in step across processes.
            draws = [self._draw(self.class_members[label], rng) for label in chosen]
            yield [int(index) for draw in draws[mine] for index in draw]

    def _draw(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if len(indices) >= self.samples_per_class:
            return rng.choice(indices, size=self.samples_per_class, replace=False)
        repeats = rng.choice(indices, size=self.samples_per_class - len(indices), replace=True)
        return np.concatenate([rng.permutation(indices), repeats])
