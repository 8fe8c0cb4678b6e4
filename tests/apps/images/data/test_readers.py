from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from simtune.apps.images.data.readers import (
    ImageFolderReader,
    LabelsCsvReader,
    StanfordCarsMatReader,
    read_collection,
)
from tests.apps.images.conftest import CLASS_NAMES, write_image, write_labels_csv


def test_labels_csv_reader_maps_class_ids_to_0_based_indices_in_id_order(labels_csv_root: Path):
    collection = read_collection(labels_csv_root)
    assert collection.layout == LabelsCsvReader.layout
    assert collection.class_names == CLASS_NAMES
    assert len(collection.images) == 12
    first = collection.images[0]
    assert first.class_index == 0 and first.original_split == "train" and first.path.is_file()
    assert sorted({i.class_index for i in collection.images}) == [0, 1, 2, 3]


def test_labels_csv_reports_missing_files_and_keeps_the_rest(labels_csv_root: Path):
    gone = labels_csv_root / "images/002/img_2_1.jpg"
    gone.unlink()
    collection = read_collection(labels_csv_root)
    assert collection.missing == [gone]
    assert len(collection.images) == 11


def test_labels_csv_naming_only_missing_files_fails_clearly(tmp_path: Path):
    write_labels_csv(tmp_path, [("a.jpg", 1, "Audi TTS Coupe 2012", "train")])
    with pytest.raises(ValueError, match="lists no existing images.*1 listed files are missing"):
        read_collection(tmp_path)


def test_labels_csv_without_required_columns_names_them(tmp_path: Path):
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,1\n")
    with pytest.raises(ValueError, match="missing column.*filename, class_id, class_name"):
        read_collection(tmp_path)


def test_labels_csv_with_conflicting_class_names_names_the_line(tmp_path: Path):
    write_image(tmp_path / "a.jpg", 1)
    write_labels_csv(tmp_path, [("a.jpg", 1, "Audi TTS Coupe 2012", "train"), ("a.jpg", 1, "Other 2001", "train")])
    with pytest.raises(ValueError, match="line 3: class_id 1 is named both"):
        read_collection(tmp_path)


def test_labels_csv_with_non_integer_class_id_names_the_line(tmp_path: Path):
    write_labels_csv(tmp_path, [("a.jpg", "one", "Audi TTS Coupe 2012", "train")])
    with pytest.raises(ValueError, match="line 2: class_id 'one' is not an integer"):
        read_collection(tmp_path)


def _annotations(rows: list[tuple[str, int, tuple[int, int, int, int]]]) -> dict:
    dtype = [(f, "O") for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    table = np.array([(*box, cls, fname) for fname, cls, box in rows], dtype=dtype)
    return {"annotations": table.reshape(1, -1)}


def write_stanford_layout(base: Path, with_test: bool = True) -> None:
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit/cars_meta.mat", {"class_names": np.array(CLASS_NAMES[:2], dtype=object).reshape(1, -1)})
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
    collection = read_collection(tmp_path)
    assert collection.layout == StanfordCarsMatReader.layout
    assert collection.class_names == CLASS_NAMES[:2]
    assert [(i.path.name, i.class_index, i.original_split) for i in collection.images] == [
        ("00001.jpg", 0, "train"), ("00002.jpg", 1, "train"), ("00001.jpg", 1, "test"),
    ]
    assert collection.images[0].bbox == (2, 3, 30, 25)
    assert [p.name for p in collection.missing] == ["00002.jpg"] and collection.missing[0].parent.name == "cars_test"


def test_stanford_mat_reader_reads_a_single_split(tmp_path: Path):
    write_stanford_layout(tmp_path, with_test=False)
    assert {i.original_split for i in read_collection(tmp_path).images} == {"train"}


def test_stanford_mat_reader_without_labels_in_annotations_says_which_file(tmp_path: Path):
    write_stanford_layout(tmp_path, with_test=False)
    table = np.array([("00001.jpg",)], dtype=[("fname", "O")]).reshape(1, -1)
    savemat(tmp_path / "devkit/cars_train_annos.mat", {"annotations": table})
    with pytest.raises(ValueError, match="cars_train_annos.mat: annotations lack field"):
        read_collection(tmp_path)


def test_stanford_mat_reader_without_annotations_lists_what_it_looked_for(tmp_path: Path):
    (tmp_path / "devkit").mkdir()
    savemat(tmp_path / "devkit/cars_meta.mat", {"class_names": np.array(CLASS_NAMES, dtype=object).reshape(1, -1)})
    with pytest.raises(FileNotFoundError, match="no annotations: looked for.*cars_train_annos.mat"):
        read_collection(tmp_path)


def test_stanford_mat_reader_with_annotations_but_no_image_folder(tmp_path: Path):
    write_stanford_layout(tmp_path, with_test=False)
    for f in (tmp_path / "cars_train").iterdir():
        f.unlink()
    (tmp_path / "cars_train").rmdir()
    with pytest.raises(FileNotFoundError, match="its image folder .*cars_train does not"):
        read_collection(tmp_path)


def test_image_folder_reader_uses_sorted_folder_names_and_ignores_other_files(tmp_path: Path):
    for name, n in (("Volvo 240 Sedan 1993", 2), ("Audi 100 Sedan 1994", 3)):
        for i in range(n):
            write_image(tmp_path / name / f"{i}.png", seed=i)
    (tmp_path / "Audi 100 Sedan 1994" / "notes.txt").write_text("not an image")
    (tmp_path / "empty class").mkdir()
    (tmp_path / "README.txt").write_text("top-level files are ignored")
    collection = read_collection(tmp_path)
    assert collection.layout == ImageFolderReader.layout
    assert collection.class_names == ["Audi 100 Sedan 1994", "Volvo 240 Sedan 1993"]
    assert [i.class_index for i in collection.images] == [0, 0, 0, 1, 1]


def test_empty_folder_fails_listing_every_layout_looked_for(tmp_path: Path):
    with pytest.raises(ValueError, match="no recognised layout") as error:
        read_collection(tmp_path)
    for reader in (LabelsCsvReader, StanfordCarsMatReader, ImageFolderReader):
        assert reader.layout in str(error.value)


def test_unrecognised_folder_fails_clearly(tmp_path: Path):
    (tmp_path / "photos.zip").write_bytes(b"PK")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("hi")
    with pytest.raises(ValueError, match="no recognised layout"):
        read_collection(tmp_path)


def test_missing_data_folder_fails_clearly(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_collection(tmp_path / "nowhere")
