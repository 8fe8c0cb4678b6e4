"""The zero-shot protocol: train on half of the classes, judge on the other half, which the model never saw.

The default reproduces the original tutorial's split (``RandomState(42).choice(196, 98)`` are the
0-based training classes of Stanford Cars), so figures compare across tools. The split is written to the
run folder and reused from there, so a resumed run can never silently judge on classes it trained on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from simtune.atomic import write_json

DEFAULT_SEED = 42


@dataclass(frozen=True)
class ClassSplit:
    """``train_classes`` / ``unseen_classes``: sorted 0-based class indices; ``class_names`` pins what they mean."""

    seed: int
    class_names: list[str]
    train_classes: list[int]
    unseen_classes: list[int]

    def save(self, path: str | Path) -> None:
        write_json(Path(path), asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "ClassSplit":
        return cls(**json.loads(Path(path).read_text()))


def split_classes(class_names: list[str], seed: int = DEFAULT_SEED) -> ClassSplit:
    """Draw ``len // 2`` training classes with ``numpy.random.RandomState(seed)``; the rest are unseen."""
    num_classes = len(class_names)
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes to split into train and unseen halves, got {num_classes}")
    train = np.random.RandomState(seed).choice(num_classes, num_classes // 2, replace=False)
    unseen = np.setdiff1d(np.arange(num_classes), train)
    return ClassSplit(seed, list(class_names), sorted(int(c) for c in train), [int(c) for c in unseen])


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
