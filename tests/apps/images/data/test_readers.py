from pathlib import Path

import pytest
from tests.apps.conftest import CLASS_NAMES, write_image, write_labels_csv

from simtune.apps.images.data.readers import ImageFolderReader, LabelsCsvReader, read_collection


def test_labels_csv_reader_maps_class_ids_to_0_based_indices_in_id_order(labels_csv_root: Path):
    collection = read_collection(labels_csv_root)
    assert collection.layout == LabelsCsvReader.layout
    assert collection.class_names == CLASS_NAMES
    assert len(collection.images) == 24
    first = collection.images[0]
    assert first.class_index == 0 and first.original_split == "train" and first.path.is_file()
    assert sorted({i.class_index for i in collection.images}) == list(range(8))


def test_labels_csv_reports_missing_files_and_keeps_the_rest(labels_csv_root: Path):
    gone = labels_csv_root / "images/002/img_2_1.jpg"
    gone.unlink()
    collection = read_collection(labels_csv_root)
    assert collection.missing == [gone]
    assert len(collection.images) == 23


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


@pytest.mark.parametrize("outside", ["/etc/passwd", "../secret/a.jpg", "images/../../a.jpg"])
def test_labels_csv_naming_a_path_outside_its_folder_is_refused_at_read_time(tmp_path: Path, outside: str):
    data = tmp_path / "data"
    write_image(data / "a.jpg", 1)
    write_image(tmp_path / "secret/a.jpg", 2)
    write_labels_csv(data, [("a.jpg", 1, "Audi TTS Coupe 2012", "train"), (outside, 1, "Audi TTS Coupe 2012", "train")])
    with pytest.raises(
        ValueError, match=rf"labels.csv, line 3: filename '{outside}' must be a path inside .*without '\.\.'"
    ):
        read_collection(data)


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
    for reader in (LabelsCsvReader, ImageFolderReader):
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
