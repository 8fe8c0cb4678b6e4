"""The Stanford Cars preset's own layout: the original release with .mat annotations."""

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat
from tests.apps.conftest import CLASS_NAMES, write_image

from simtune.apps.cars.preset import CARS
from simtune.apps.cars.stanford_mat import StanfordCarsMatReader
from simtune.apps.images.data.readers import READERS, read_collection

CAR_READERS = CARS.readers + READERS


def _annotations(rows: list[tuple[str, int, tuple[int, int, int, int]]]) -> dict:
    dtype = [(f, "O") for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    table = np.array([(*box, cls, fname) for fname, cls, box in rows], dtype=dtype)
    return {"annotations": table.reshape(1, -1)}


def write_stanford_layout(base: Path, with_test: bool = True, class_names: list[str] = CLASS_NAMES[:2]) -> None:
    """Images of the first two classes; ``cars_meta.mat`` names ``class_names``."""
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit/cars_meta.mat", {"class_names": np.array(class_names, dtype=object).reshape(1, -1)})
    train = [("00001.jpg", 1, (2, 3, 30, 25)), ("00002.jpg", 2, (0, 0, 39, 29))]
    for i, (fname, _, _) in enumerate(train):
        write_image(base / "cars_train" / fname, seed=i)
    savemat(base / "devkit/cars_train_annos.mat", _annotations(train))
    if with_test:
        test = [("00001.jpg", 2, (5, 5, 20, 20)), ("00002.jpg", 1, (1, 1, 10, 10))]
        write_image(base / "cars_test/00001.jpg", seed=7)  # 00002.jpg is missing on purpose
        savemat(base / "cars_test_annos_withlabels.mat", _annotations(test))


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "torchvision-stanford_cars"])
def test_stanford_mat_reader_merges_splits_with_boxes_and_reports_missing(tmp_path: Path, nested: bool):
    write_stanford_layout(tmp_path / "stanford_cars" if nested else tmp_path)
    collection = read_collection(tmp_path, CAR_READERS)
    assert collection.layout == StanfordCarsMatReader.layout
    assert collection.class_names == CLASS_NAMES[:2]
    assert [(i.path.name, i.class_index, i.original_split) for i in collection.images] == [
        ("00001.jpg", 0, "train"),
        ("00002.jpg", 1, "train"),
        ("00001.jpg", 1, "test"),
    ]
    assert collection.images[0].bbox == (2, 3, 30, 25)
    assert [p.name for p in collection.missing] == ["00002.jpg"] and collection.missing[0].parent.name == "cars_test"


def test_stanford_mat_reader_reads_a_single_split(tmp_path: Path):
    write_stanford_layout(tmp_path, with_test=False)
    assert {i.original_split for i in read_collection(tmp_path, CAR_READERS).images} == {"train"}


def test_stanford_mat_reader_without_labels_in_annotations_says_which_file(tmp_path: Path):
    write_stanford_layout(tmp_path, with_test=False)
    table = np.array([("00001.jpg",)], dtype=[("fname", "O")]).reshape(1, -1)
    savemat(tmp_path / "devkit/cars_train_annos.mat", {"annotations": table})
    with pytest.raises(ValueError, match="cars_train_annos.mat: annotations lack field"):
        read_collection(tmp_path, CAR_READERS)


def test_stanford_mat_reader_without_annotations_lists_what_it_looked_for(tmp_path: Path):
    (tmp_path / "devkit").mkdir()
    savemat(tmp_path / "devkit/cars_meta.mat", {"class_names": np.array(CLASS_NAMES, dtype=object).reshape(1, -1)})
    with pytest.raises(FileNotFoundError, match="no annotations: looked for.*cars_train_annos.mat"):
        read_collection(tmp_path, CAR_READERS)


def test_stanford_mat_reader_with_annotations_but_no_image_folder(tmp_path: Path):
    write_stanford_layout(tmp_path, with_test=False)
    for f in (tmp_path / "cars_train").iterdir():
        f.unlink()
    (tmp_path / "cars_train").rmdir()
    with pytest.raises(FileNotFoundError, match="its image folder .*cars_train does not"):
        read_collection(tmp_path, CAR_READERS)


def test_the_cars_app_lists_its_layout_among_those_looked_for(tmp_path: Path):
    with pytest.raises(ValueError, match="no recognised layout") as error:
        read_collection(tmp_path, CAR_READERS)
    for reader in CAR_READERS:
        assert reader.layout in str(error.value)
