from pathlib import Path

import pytest
from tests.apps.conftest import write_image, write_truncated_image

from simtune.apps.images.data.dataset import ImageDataset, prepare_dataset
from simtune.apps.images.data.run_folder import Run
from simtune.apps.images.data.split import ClassSplit


def test_prepare_skips_unreadable_lists_missing_and_persists(labels_csv_root: Path, tmp_path: Path):
    truncated = write_truncated_image(labels_csv_root / "images/001/img_1_0.jpg", 99)
    (labels_csv_root / "images/003/img_3_2.jpg").unlink()
    run = tmp_path / "run"
    dataset, split = prepare_dataset(labels_csv_root, run, progress=False)
    assert list(dataset.skipped) == [str(truncated)] and "truncated" in dataset.skipped[str(truncated)].lower()
    assert dataset.missing == [str(labels_csv_root / "images/003/img_3_2.jpg")]
    assert len(dataset.records) == 22
    assert [r.id for r in dataset.records] == list(range(22))
    assert all(r.metadata == {} for r in dataset.records)  # the generic app parses nothing out of class names
    assert (dataset.title, dataset.noun, dataset.metadata_fields) == ("Similar images", "images", {})
    subsets = {"train": split.train_classes, "validation": split.validation_classes, "unseen": split.unseen_classes}
    for record in dataset.records:
        assert record.class_index in subsets[record.subset]
    assert ImageDataset.load(Run(run).dataset_file) == dataset
    assert ClassSplit.load(Run(run).split_file) == split


def test_prepare_reuses_the_run_folder_and_refuses_other_data(labels_csv_root: Path, tmp_path: Path):
    run = tmp_path / "run"
    first, _ = prepare_dataset(labels_csv_root, run, progress=False)
    write_truncated_image(labels_csv_root / "images/001/img_1_0.jpg", 99)  # not re-read: the run is prepared
    assert prepare_dataset(labels_csv_root, run, progress=False)[0] == first
    other = tmp_path / "other"
    write_image(other / "Volvo 240 Sedan 1993" / "a.jpg", 1)
    with pytest.raises(ValueError, match="was prepared from .*use a new --run folder"):
        prepare_dataset(other, run, progress=False)


def test_single_image_classes_are_kept_and_named(tmp_path: Path):
    data = tmp_path / "folder"
    counts = {f"class {i}": 1 if i % 3 == 0 else 2 for i in range(10)}
    for name, n in counts.items():
        for i in range(n):
            write_image(data / name / f"{i}.jpg", seed=i)
    dataset, split = prepare_dataset(data, tmp_path / "run", seed=0, progress=False)
    assert len(dataset.records) == sum(counts.values())
    singles = {name for name, n in counts.items() if n == 1}
    for subset in ("train", "validation", "unseen"):
        names = {r.class_name for r in dataset.subset(subset)}
        assert dataset.single_image_classes(subset) == sorted(names & singles)


@pytest.mark.parametrize("classes", [1, 5, 7])
def test_too_few_classes_to_split_says_how_many_and_how_the_split_works(tmp_path: Path, classes: int):
    for c in range(classes):
        write_image(tmp_path / "data" / f"class {c}" / "a.jpg", seed=c)
        write_image(tmp_path / "data" / f"class {c}" / "b.jpg", seed=c + 100)
    with pytest.raises(ValueError, match=f"too few classes to split: .*validation.*at least 8 classes.*has {classes}$"):
        prepare_dataset(tmp_path / "data", tmp_path / "run", progress=False)


def test_no_readable_image_fails_clearly(tmp_path: Path):
    for c in range(8):
        write_truncated_image(tmp_path / "data" / f"class {c}" / "a.jpg", c)
    with pytest.raises(ValueError, match="none of its 8 images could be read"):
        prepare_dataset(tmp_path / "data", tmp_path / "run", progress=False)
