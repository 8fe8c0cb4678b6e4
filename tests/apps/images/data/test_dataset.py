import re
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
    for c, (name, n) in enumerate(counts.items()):
        for i in range(n):
            write_image(data / name / f"{i}.jpg", seed=10 * c + i)  # distinct images: copies would be dropped
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


def _precision_at_1(dataset: ImageDataset) -> float:
    """Leave-one-out Precision@1 with each image's downscaled pixels as its embedding: a copy of an image
    embeds exactly as the image does."""
    import numpy as np
    import torch
    from PIL import Image

    from simtune.apps.images.data.samples import ImageSamples
    from simtune.eval import Evaluator, GroupSampler, PrecisionAtK

    records = dataset.records
    pixels = [np.asarray(Image.open(r.path).convert("RGB").resize((6, 6)), dtype=np.float32) for r in records]
    embeddings = torch.tensor(np.stack([p.ravel() - p.mean() for p in pixels]))
    task = GroupSampler().sample(ImageSamples(records))
    return float(Evaluator([PrecisionAtK(1)]).score(task, embeddings).metrics["precision_at_1"])


def test_duplicates_never_inflate_metrics_they_are_dropped_and_named(labels_csv_root: Path, tmp_path: Path):
    clean, _ = prepare_dataset(labels_csv_root, tmp_path / "clean", progress=False)
    labels = labels_csv_root / "labels.csv"
    rows = labels.read_text().splitlines()
    copies = labels_csv_root / "copies"
    copies.mkdir()
    for row in rows[1:]:  # every image also under another name, byte for byte
        filename = row.split(",")[0]
        (copies / filename.replace("/", "_")).write_bytes((labels_csv_root / filename).read_bytes())
    extra = [",".join([f"copies/{row.split(',')[0].replace('/', '_')}", *row.split(",")[1:]]) for row in rows[1:]]
    labels.write_text("\n".join(rows + rows[1:4] + extra) + "\n")  # three rows repeated, then the copies
    dataset, _ = prepare_dataset(labels_csv_root, tmp_path / "run", progress=False)
    assert [(r.path, r.class_index, r.subset) for r in dataset.records] == [
        (r.path, r.class_index, r.subset) for r in clean.records
    ]
    assert _precision_at_1(dataset) == _precision_at_1(clean) < 0.5  # with the copies kept it would be 1.0
    assert len(dataset.duplicates) == 3 + 24
    assert dataset.duplicates["labels.csv line 26"] == str(labels_csv_root / "images/001/img_1_0.jpg")
    assert dataset.duplicates[str(copies / "images_001_img_1_0.jpg")] == str(labels_csv_root / "images/001/img_1_0.jpg")
    assert ImageDataset.load(Run(tmp_path / "run").dataset_file) == dataset


def test_byte_identical_images_in_class_folders_are_kept_once_and_counted(tmp_path: Path, capsys):
    from simtune.apps.images.data.preset import IMAGES
    from simtune.apps.images.run.commands import prepare_data

    for c in range(8):
        for i in range(2):
            write_image(tmp_path / "data" / f"class {c}" / f"{i}.jpg", seed=10 * c + i)
    twin = tmp_path / "data" / "class 3" / "copy of 0.jpg"
    twin.write_bytes((tmp_path / "data" / "class 3" / "0.jpg").read_bytes())
    same_size = tmp_path / "data" / "class 4" / "same size.jpg"  # as large as a copy, other bytes: kept
    data = bytearray((tmp_path / "data" / "class 4" / "0.jpg").read_bytes())
    data[-3] ^= 0xFF
    same_size.write_bytes(bytes(data))
    dataset, _ = prepare_data(tmp_path / "data", tmp_path / "run", 42, False, 1, IMAGES)
    assert dataset.duplicates == {str(twin): str(tmp_path / "data" / "class 3" / "0.jpg")}
    assert str(same_size) in [r.path for r in dataset.records] and len(dataset.records) == 17
    printed = capsys.readouterr().out
    said = "1 duplicates dropped (listed twice, or byte-identical to a kept image), kept once, e.g."
    assert f"{said} {twin} = {tmp_path / 'data' / 'class 3' / '0.jpg'}\n" in printed


@pytest.mark.parametrize(
    "edit", ["a record lost a key", "a record gained a key", "the file is cut short", "an image listed twice"]
)
def test_a_damaged_or_hand_edited_dataset_file_is_one_line_naming_it(labels_csv_root: Path, tmp_path: Path, edit):
    import json

    prepare_dataset(labels_csv_root, tmp_path / "run", progress=False)
    path = Run(tmp_path / "run").dataset_file
    raw = json.loads(path.read_text())
    if edit == "a record lost a key":
        del raw["records"][3]["class_index"]
    elif edit == "a record gained a key":
        raw["records"][3]["colour"] = "red"
    elif edit == "an image listed twice":
        raw["records"].append(dict(raw["records"][0], id=len(raw["records"])))
    text = json.dumps(raw)
    path.write_text(text[: len(text) // 2] if edit == "the file is cut short" else text)
    with pytest.raises(ValueError, match="^" + re.escape(str(path))) as refused:
        ImageDataset.load(path)
    assert "\n" not in str(refused.value) and "new --run folder" in str(refused.value)


def test_byte_identical_copies_labelled_with_different_classes_are_all_dropped_and_named(tmp_path: Path):
    for c in range(8):
        for i in range(2):
            write_image(tmp_path / "data" / f"class {c}" / f"{i}.jpg", seed=10 * c + i)
    original = tmp_path / "data" / "class 1" / "0.jpg"
    misfiled = tmp_path / "data" / "class 2" / "from class 1.jpg"
    misfiled.write_bytes(original.read_bytes())
    dataset, _ = prepare_dataset(tmp_path / "data", tmp_path / "run", progress=False)
    assert dataset.label_conflicts == {
        str(original): f"'class 1', but byte-identical to {misfiled} ('class 2')",
        str(misfiled): f"'class 2', but byte-identical to {original} ('class 1')",
    }
    assert len(dataset.records) == 15 and dataset.duplicates == {}
