from pathlib import Path

import pytest
from scipy.io import savemat

from simtune.apps.images.data.dataset import DATASET_FILE, SPLIT_FILE, CarsDataset, prepare_dataset
from simtune.apps.images.run.split import ClassSplit
from tests.apps.images.conftest import write_image, write_truncated_image
from tests.apps.images.data.test_readers import write_stanford_layout


def test_prepare_skips_unreadable_lists_missing_and_persists(labels_csv_root: Path, tmp_path: Path):
    truncated = write_truncated_image(labels_csv_root / "images/001/img_1_0.jpg", 99)
    (labels_csv_root / "images/003/img_3_2.jpg").unlink()
    run = tmp_path / "run"
    dataset, split = prepare_dataset(labels_csv_root, run, progress=False)
    assert list(dataset.skipped) == [str(truncated)] and "truncated" in dataset.skipped[str(truncated)].lower()
    assert dataset.missing == [str(labels_csv_root / "images/003/img_3_2.jpg")]
    assert len(dataset.records) == 10
    assert [r.id for r in dataset.records] == list(range(10))
    audi = next(r for r in dataset.records if r.class_index == 0)
    assert (audi.make, audi.model, audi.year) == ("Audi", "TTS Coupe", 2012)
    for record in dataset.records:
        assert record.subset == ("train" if record.class_index in split.train_classes else "unseen")
    assert CarsDataset.load(run / DATASET_FILE) == dataset
    assert ClassSplit.load(run / SPLIT_FILE) == split


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
    for name, n in (("Audi 100 Sedan 1994", 3), ("Volvo 240 Sedan 1993", 1), ("Geo Metro Convertible 1993", 2), ("Ford GT Coupe 2006", 1)):
        for i in range(n):
            write_image(data / name / f"{i}.jpg", seed=i)
    dataset, split = prepare_dataset(data, tmp_path / "run", seed=0, progress=False)
    assert len(dataset.records) == 7
    singles = {"Volvo 240 Sedan 1993", "Ford GT Coupe 2006"}
    for subset in ("train", "unseen"):
        names = {r.class_name for r in dataset.subset(subset)}
        assert dataset.single_image_classes(subset) == sorted(names & singles)


def test_prepare_with_crop_writes_box_crops_into_the_run(tmp_path: Path):
    write_stanford_layout(tmp_path / "data")
    dataset, _ = prepare_dataset(tmp_path / "data", tmp_path / "run", crop=True, progress=False)
    paths = [Path(r.path) for r in dataset.records]
    assert all(p.is_relative_to(tmp_path / "run" / "crops") and p.is_file() for p in paths)
    assert len(dataset.missing) == 1 and dataset.cropped


def test_no_readable_image_fails_clearly(tmp_path: Path):
    write_truncated_image(tmp_path / "data" / "Audi 100 Sedan 1994" / "a.jpg", 1)
    write_truncated_image(tmp_path / "data" / "Volvo 240 Sedan 1993" / "a.jpg", 2)
    with pytest.raises(ValueError, match="none of its 2 images could be read"):
        prepare_dataset(tmp_path / "data", tmp_path / "run", progress=False)
