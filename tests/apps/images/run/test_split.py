import numpy as np
import pytest

from simtune.apps.images.run.split import ClassSplit, load_or_create_split, split_classes

NAMES = [f"Make{i} Model {2000 + i}" for i in range(196)]


def test_default_split_is_the_tutorial_split():
    split = split_classes(NAMES)
    assert split.seed == 42
    assert split.train_classes == sorted(np.random.RandomState(42).choice(196, 98, replace=False).tolist())
    assert len(split.unseen_classes) == 98
    assert set(split.train_classes) | set(split.unseen_classes) == set(range(196))
    assert not set(split.train_classes) & set(split.unseen_classes)


def test_seed_changes_the_split():
    assert split_classes(NAMES, seed=1).train_classes != split_classes(NAMES).train_classes


def test_split_is_persisted_and_reused(tmp_path):
    path = tmp_path / "split.json"
    first = load_or_create_split(path, NAMES)
    assert path.is_file()
    assert ClassSplit.load(path) == first
    assert load_or_create_split(path, NAMES) == first


def test_saved_split_for_other_classes_or_seed_is_refused(tmp_path):
    path = tmp_path / "split.json"
    load_or_create_split(path, NAMES)
    with pytest.raises(ValueError, match="holds a split for 196 classes with seed 42.*new --run folder"):
        load_or_create_split(path, NAMES[:10])
    with pytest.raises(ValueError, match="seed is 7"):
        load_or_create_split(path, NAMES, seed=7)


def test_one_class_cannot_be_split():
    with pytest.raises(ValueError, match="at least 2 classes"):
        split_classes(["Only 2000"])
