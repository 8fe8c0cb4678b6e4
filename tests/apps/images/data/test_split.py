import numpy as np
import pytest

from simtune.apps.images.data.split import ClassSplit, load_or_create_split, split_classes

NAMES = [f"Make{i} Model {2000 + i}" for i in range(196)]


def test_default_split_keeps_the_tutorial_unseen_half_and_carves_validation_from_training():
    split = split_classes(NAMES)
    half = sorted(np.random.RandomState(42).choice(196, 98, replace=False).tolist())
    assert split.seed == 42
    assert sorted(split.train_classes + split.validation_classes) == half
    assert len(split.validation_classes) == 20 and len(split.train_classes) == 78 and len(split.unseen_classes) == 98


@pytest.mark.parametrize("count", [8, 9, 13, 50, 196])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_train_validation_and_unseen_never_overlap_and_cover_every_class(count, seed):
    split = split_classes(NAMES[:count], seed=seed)
    train, validation, unseen = map(set, (split.train_classes, split.validation_classes, split.unseen_classes))
    assert not train & validation and not train & unseen and not validation & unseen
    assert train | validation | unseen == set(range(count))
    assert len(validation) == max(2, round(0.2 * (count // 2))) and len(train) >= 2


def test_seed_changes_the_split():
    assert split_classes(NAMES, seed=1).train_classes != split_classes(NAMES).train_classes
    assert split_classes(NAMES, seed=1).validation_classes != split_classes(NAMES).validation_classes


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


def test_a_split_saved_without_validation_classes_is_refused(tmp_path):
    path = tmp_path / "split.json"
    path.write_text('{"seed": 42, "class_names": ["a", "b"], "train_classes": [0], "unseen_classes": [1]}')
    with pytest.raises(ValueError, match="without validation classes.*new --run folder"):
        ClassSplit.load(path)


@pytest.mark.parametrize("count", [1, 2, 7])
def test_too_few_classes_cannot_be_split(count):
    with pytest.raises(
        ValueError, match=f"too few classes to split:.*at least 8 classes are needed; this collection has {count}"
    ):
        split_classes(NAMES[:count])


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda raw: raw.pop("unseen_classes"), "is damaged or was edited by hand (TypeError: "),
        (lambda raw: raw.update(note="mine"), "is damaged or was edited by hand (TypeError: "),
        (lambda raw: raw["train_classes"].append(raw["unseen_classes"].pop()), "was edited by hand: its classes are"),
        (lambda raw: raw.update(class_names=7), "is damaged or was edited by hand (TypeError: "),
        (None, "is damaged ("),
    ],
    ids=["key removed", "key added", "unseen class moved to training", "wrong type", "cut short"],
)
def test_a_damaged_or_hand_edited_split_is_one_line_naming_it(tmp_path, edit, says):
    import json

    path = tmp_path / "split.json"
    load_or_create_split(path, NAMES)
    raw = json.loads(path.read_text())
    if edit is None:
        path.write_text(path.read_text()[:100])
    else:
        edit(raw)
        path.write_text(json.dumps(raw))
    with pytest.raises(ValueError) as refused:
        ClassSplit.load(path)
    assert str(refused.value).startswith(f"{path} {says}") and "\n" not in str(refused.value)
    assert "new --run folder" in str(refused.value)
