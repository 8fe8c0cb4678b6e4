"""The zero-shot protocol: train on half of the classes, judge on the other half, which the model never saw.

The default reproduces the original tutorial's split (``RandomState(42).choice(196, 98)`` are the
0-based training-half classes of Stanford Cars), so figures compare across tools. A fifth of the
training half (at least 2 classes) is then set aside, with the same seed, as validation classes: the
training run watches its retrieval metrics to stop early and to keep its best epoch, so nothing is
ever chosen by looking at the unseen half. The split is written to the run folder and reused from
there, so a resumed run can never silently judge on classes it trained on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from simtune.atomic import write_json

DEFAULT_SEED = 42
VALIDATION_FRACTION = 0.2
MIN_VALIDATION_CLASSES = 2
# 2 training + 2 validation classes in the training half, as many unseen: fewer cannot be told apart
MIN_CLASSES = 8


@dataclass(frozen=True)
class ClassSplit:
    """Sorted 0-based class indices; the three lists are disjoint and cover ``class_names``.

    ``train_classes`` are fitted, ``validation_classes`` steer training (early stopping, the kept epoch),
    ``unseen_classes`` are only evaluated. ``class_names`` pins what the indices mean."""

    seed: int
    class_names: list[str]
    train_classes: list[int]
    validation_classes: list[int]
    unseen_classes: list[int]

    def save(self, path: str | Path) -> None:
        write_json(Path(path), asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> ClassSplit:
        """The split saved at ``path``, verified: it must be the very split its seed draws for its classes, so a
        damaged or hand-edited file (a class moved from unseen to training) can never judge on trained classes."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:  # not JSON, or not UTF-8
            raise ValueError(f"{path} is damaged ({error}): use a new --run folder") from None
        if isinstance(raw, dict) and "seed" in raw and "validation_classes" not in raw:
            raise ValueError(f"{path} is a split without validation classes (an older run): use a new --run folder")
        try:
            split = cls(**raw)
            drawn = split_classes(split.class_names, split.seed)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{path} is damaged or was edited by hand ({type(error).__name__}: {error}): use a new --run folder"
            ) from None
        if split != drawn:
            raise ValueError(
                f"{path} was edited by hand: its classes are not the split seed {split.seed} draws for its "
                f"{len(split.class_names)} classes; use a new --run folder (or --split-seed for another split)"
            )
        return split


def describe_split_rule(num_classes: int) -> str:
    return (
        f"the classes are split into halves, training and unseen, and a fifth of the training half "
        f"(at least {MIN_VALIDATION_CLASSES}) becomes validation classes, leaving at least 2 to train on, so at "
        f"least {MIN_CLASSES} classes are needed; this collection has {num_classes}"
    )


def split_classes(class_names: list[str], seed: int = DEFAULT_SEED) -> ClassSplit:
    """Draw ``len // 2`` training-half classes with ``numpy.random.RandomState(seed)`` (the rest are
    unseen), then ``max(2, round(0.2 * half))`` of those as validation classes with ``RandomState(seed + 1)``."""
    num_classes = len(class_names)
    if num_classes < MIN_CLASSES:
        raise ValueError(f"too few classes to split: {describe_split_rule(num_classes)}")
    half = np.random.RandomState(seed).choice(num_classes, num_classes // 2, replace=False)
    unseen = np.setdiff1d(np.arange(num_classes), half)
    count = max(MIN_VALIDATION_CLASSES, round(VALIDATION_FRACTION * len(half)))
    validation = np.random.RandomState(seed + 1).choice(np.sort(half), count, replace=False)
    train = np.setdiff1d(half, validation)
    return ClassSplit(
        seed, list(class_names), [int(c) for c in train], sorted(int(c) for c in validation), [int(c) for c in unseen]
    )


def load_or_create_split(path: str | Path, class_names: list[str], seed: int = DEFAULT_SEED) -> ClassSplit:
    """Reuse the split saved at ``path``; fail if it was made for other classes or another seed."""
    path = Path(path)
    if not path.is_file():
        split = split_classes(class_names, seed)
        split.save(path)
        return split
    split = ClassSplit.load(path)
    if split.class_names != list(class_names) or split.seed != seed:
        raise ValueError(
            f"{path} holds a split for {len(split.class_names)} classes with seed {split.seed}, but the data has "
            f"{len(class_names)} classes and the seed is {seed}: use a new --run folder for other data or seeds"
        )
    return split
