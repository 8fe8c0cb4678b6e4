"""P classes x K samples per batch, so every batch holds positives for mining losses."""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Yields batches of dataset indices: ``classes_per_batch`` distinct classes, ``samples_per_class`` each.

    Classes are visited in a shuffled round-robin, so over an epoch every class appears about equally
    often whatever ``batches_per_epoch`` is (default: enough batches to draw each usable sample about
    once). A class with fewer than K samples contributes all of them plus random repeats; a class with
    a single sample has no positive for itself and is skipped (with a warning counting them).

    Deterministic per ``(seed, epoch)``. Each pass over the sampler uses the next epoch, and
    ``set_epoch`` (called by Lightning and by distributed loops) pins it.
    """

    def __init__(
        self,
        labels: Sequence[int],
        classes_per_batch: int,
        samples_per_class: int,
        batches_per_epoch: int | None = None,
        seed: int = 0,
    ):
        if samples_per_class < 2:
            raise ValueError(f"samples_per_class must be >= 2 so each batch has positives, got {samples_per_class}")
        if classes_per_batch < 2:
            raise ValueError(f"classes_per_batch must be >= 2 so each batch has negatives, got {classes_per_batch}")
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1 or None, got {batches_per_epoch}")
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
        self.class_members = {label: np.asarray(indices) for label, indices in sorted(members.items()) if len(indices) >= 2}
        if len(self.class_members) < classes_per_batch:
            raise ValueError(
                f"classes_per_batch={classes_per_batch} but labels have only {len(self.class_members)} classes "
                "with at least two samples"
            )
        self.classes_per_batch = classes_per_batch
        self.samples_per_class = samples_per_class
        self.batch_size = classes_per_batch * samples_per_class
        usable = sum(len(indices) for indices in self.class_members.values())
        self.batches_per_epoch = batches_per_epoch or max(1, usable // self.batch_size)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        classes = list(self.class_members)
        queue: list[int] = []
        for _ in range(self.batches_per_epoch):
            chosen: list[int] = []
            while len(chosen) < self.classes_per_batch:
                if not queue:
                    queue = [classes[i] for i in rng.permutation(len(classes))]
                label = queue.pop()
                if label in chosen:  # only at a reshuffle boundary; put it back for the next batch
                    queue.insert(0, label)
                    continue
                chosen.append(label)
            yield [int(index) for label in chosen for index in self._draw(self.class_members[label], rng)]

    def _draw(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if len(indices) >= self.samples_per_class:
            return rng.choice(indices, size=self.samples_per_class, replace=False)
        repeats = rng.choice(indices, size=self.samples_per_class - len(indices), replace=True)
        return np.concatenate([rng.permutation(indices), repeats])
