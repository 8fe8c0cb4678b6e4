import re
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


def test_labels_csv_saved_by_excel_with_a_byte_order_mark_is_read(labels_csv_root: Path):
    labels = labels_csv_root / "labels.csv"
    labels.write_bytes(b"\xef\xbb\xbf" + labels.read_bytes())
    collection = read_collection(labels_csv_root)
    assert collection.class_names == CLASS_NAMES and len(collection.images) == 24


def test_labels_csv_that_is_not_utf8_names_the_file_and_the_line(tmp_path: Path):
    write_image(tmp_path / "a.jpg", 1)
    (tmp_path / "labels.csv").write_bytes(
        b"filename,class_id,class_name\na.jpg,1,Audi\n" + b"a.jpg,2,Citro\xebn\n" * 3000  # past the first read chunk
    )
    with pytest.raises(ValueError) as refused:
        read_collection(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path / 'labels.csv'}, line 3: not UTF-8 text (byte 0xeb); save it as UTF-8 (in Excel: CSV UTF-8)"
    )


@pytest.mark.parametrize(
    "row, message",
    [
        ("a.jpg,1", "line 3: 2 field(s), expected 3 (filename, class_id, class_name)"),
        ("a.jpg", "line 3: 1 field(s), expected 3"),
        ("a.jpg,1,Audi A4, Sedan", "line 3: 4 field(s), expected 3 (filename, class_id, class_name); a value holding"),
        ("b.jpg,2,", "line 3: class_name is empty (class_id 2)"),
        ("b.jpg,2,  ", "line 3: class_name is empty"),
    ],
)
def test_a_row_with_missing_extra_or_empty_fields_is_refused_naming_the_line(tmp_path: Path, row: str, message: str):
    write_image(tmp_path / "a.jpg", 1)
    write_image(tmp_path / "b.jpg", 2)
    (tmp_path / "labels.csv").write_text(f"filename,class_id,class_name\na.jpg,1,Audi\n{row}\n")
    with pytest.raises(ValueError, match="^" + re.escape(f"{tmp_path / 'labels.csv'}, {message}")):
        read_collection(tmp_path)


def test_a_file_listed_twice_is_kept_once_and_the_repeat_named(tmp_path: Path):
    write_image(tmp_path / "images" / "a.jpg", 1)
    write_image(tmp_path / "images" / "b.jpg", 2)
    rows = [("images/a.jpg", 1, "Audi", "train"), ("images/b.jpg", 2, "BMW", "train")]
    rows += [("images/a.jpg", 1, "Audi", "test"), ("./images//b.jpg", 2, "BMW", "train")]
    write_labels_csv(tmp_path, rows)
    collection = read_collection(tmp_path)
    assert [(i.path.name, i.class_index) for i in collection.images] == [("a.jpg", 0), ("b.jpg", 1)]
    assert collection.repeated == {
        "labels.csv line 4": tmp_path / "images" / "a.jpg",
        "labels.csv line 5": tmp_path / "images" / "b.jpg",
    }


def test_a_file_listed_under_two_classes_is_refused_naming_both_lines(tmp_path: Path):
    write_image(tmp_path / "a.jpg", 1)
    write_labels_csv(tmp_path, [("a.jpg", 1, "Audi", "train"), ("a.jpg", 2, "BMW", "train")])
    with pytest.raises(ValueError, match=r"line 3: a.jpg is listed as class 2 here and as class 1 on line 2"):
        read_collection(tmp_path)


def test_class_folders_nested_one_level_deeper_are_reported_not_silently_left_out(tmp_path: Path):
    write_image(tmp_path / "Audi" / "0.jpg", 1)
    write_image(tmp_path / "Audi" / "2012" / "1.jpg", 2)
    write_image(tmp_path / "BMW" / "2014" / "0.jpg", 3)
    collection = read_collection(tmp_path)
    assert collection.class_names == ["Audi"]
    assert collection.unread_folders == [tmp_path / "Audi" / "2012", tmp_path / "BMW" / "2014"]
    nested_only = tmp_path / "split"
    write_image(nested_only / "train" / "Audi" / "0.jpg", 1)
    with pytest.raises(ValueError, match=re.escape(f"e.g. in {nested_only / 'train' / 'Audi'}: point at ")):
        read_collection(nested_only)
