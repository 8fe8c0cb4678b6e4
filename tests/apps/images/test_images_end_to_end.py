"""A collection that is not cars (drawn shapes, one folder per class) through `simtune images`:
train, evaluate, report, index, search."""

import json
from pathlib import Path

import pytest
from tests.apps.conftest import draw_shape, write_image, write_shapes_collection
from typer.testing import CliRunner

from simtune.apps.images.data.dataset import ImageDataset
from simtune.apps.images.data.split import ClassSplit
from simtune.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_train_evaluate_report_index_and_search_drawn_shapes(tmp_path: Path):
    data = write_shapes_collection(tmp_path / "shapes", classes=9, per_class=8)
    draw_shape(data / "purple circle" / "only.png", "circle", (120, 40, 160), seed=5)  # one image: gallery only
    run = tmp_path / "run"
    # default --classes-per-batch (64) is more than there are training classes: it adapts
    train = runner.invoke(
        app,
        [
            "images",
            "train",
            "--data",
            str(data),
            "--run",
            str(run),
            "--epochs",
            "4",
            "--patience",
            "2",
            "--samples-per-class",
            "2",
            "--workers",
            "0",
        ],
    )
    assert train.exit_code == 0, train.output
    assert "image-folder layout: 73 images" in train.output and "kept epoch" in train.output

    split = ClassSplit.load(run / "split.json")
    dataset = ImageDataset.load(run / "dataset.json")
    parts = [set(split.train_classes), set(split.validation_classes), set(split.unseen_classes)]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    assert set.union(*parts) == set(range(10)) and len(parts[1]) == 2
    for record in dataset.records:
        assert record.class_index in {"train": parts[0], "validation": parts[1], "unseen": parts[2]}[record.subset]
    history = json.loads((run / "history.json").read_text())
    assert not any(name.startswith("unseen") for name in history)  # training never looked at the unseen half
    kept = history["selection"]["kept_epoch"]
    best = max(history["validation_r_precision"], key=lambda point: point[1])
    assert kept == next(epoch for epoch, value in history["validation_r_precision"] if value == best[1])

    evaluate = runner.invoke(app, ["images", "evaluate", "--run", str(run), "--grid-queries", "3", "--unseen-curve"])
    assert evaluate.exit_code == 0, evaluate.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["validation_classes"] == 2 and metrics["selection"]["kept_epoch"] == kept
    assert metrics["tuned"]["r_precision"] > 0.4  # 5 unseen shape classes: chance is about 0.2
    history = json.loads((run / "history.json").read_text())
    assert [epoch for epoch, _ in history["unseen_r_precision"]] == [
        epoch for epoch, _ in history["validation_r_precision"]
    ]
    report = (run / "report.html").read_text()
    assert "<h1>Similar images: frozen encoder vs tuned model</h1>" in report
    assert f"Epoch {kept} was kept" in report and report.count("data:image/png;base64,") == 4
    assert "make" not in report.lower().split("<h2>training</h2>")[0]

    indexed = runner.invoke(app, ["images", "index", "--data", str(data), "--run", str(run)])
    assert indexed.exit_code == 0, indexed.output
    assert "73 added, 0 changed, 0 removed, 0 unchanged; 73 points" in indexed.output
    assert "simtune images serve" in indexed.output
    photo = data / "red square" / "03.png"
    found = runner.invoke(app, ["images", "search", str(photo), "--run", str(run), "--k", "3", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output)
    assert hits[0]["class_name"] == "red square" and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert {"class_name", "subset", "score", "id"} <= set(hits[0]) and "make" not in hits[0]
    filtered = runner.invoke(
        app,
        [
            "images",
            "search",
            str(photo),
            "--run",
            str(run),
            "--k",
            "5",
            "--json",
            "--filter",
            "class_name=blue circle",
        ],
    )
    assert filtered.exit_code == 0, filtered.output
    assert {hit["class_name"] for hit in json.loads(filtered.output)} == {"blue circle"}
    unknown = runner.invoke(app, ["images", "search", str(photo), "--run", str(run), "--filter", "make=BMW"])
    assert unknown.exit_code != 0 and "unknown filter field 'make'" in unknown.output


def test_too_few_classes_is_one_line_saying_how_many_and_how_the_split_works(tmp_path: Path):
    for c in range(5):
        for i in range(3):
            write_image(tmp_path / "data" / f"class {c}" / f"{i}.jpg", seed=10 * c + i)
    result = runner.invoke(app, ["images", "train", "--data", str(tmp_path / "data"), "--run", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output and "classes_per_batch" not in result.output
    assert "too few classes to split" in lines[0] and "this collection has 5" in lines[0] and "validation" in lines[0]
