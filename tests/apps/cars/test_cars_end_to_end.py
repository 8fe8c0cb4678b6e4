"""The CLI train -> evaluate -> report path on a slice of the shared Stanford Cars crops (10 classes x 12 images)."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simtune.cli import app


def write_slice(cars_data: Path, root: Path, classes: int = 10, per_class: int = 12) -> Path:
    """A labels.csv naming the first ``per_class`` images of the first ``classes`` classes, through a link to the
    shared images folder (a labels.csv may only name files inside its own folder)."""
    with (cars_data / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    picked: dict[int, list[dict]] = {}
    for row in rows:
        members = picked.setdefault(int(row["class_id"]), [])
        if len(members) < per_class:
            members.append(row)
    root.mkdir(parents=True)
    (root / "images").symlink_to(cars_data / "images", target_is_directory=True)
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "class_id", "class_name", "original_split"])
        for class_id in sorted(picked)[:classes]:
            for row in picked[class_id]:
                writer.writerow([row["filename"], class_id, row["class_name"], row["original_split"]])
    return root


@pytest.mark.slow
def test_train_evaluate_report_on_a_slice(tmp_path, cars_data):
    data = write_slice(cars_data, tmp_path / "slice")
    run = tmp_path / "runs" / "slice"
    runner = CliRunner()
    train = runner.invoke(
        app,
        [
            "cars",
            "train",
            "--data",
            str(data),
            "--run",
            str(run),
            "--epochs",
            "3",
            "--classes-per-batch",
            "4",
            "--samples-per-class",
            "4",
            "--workers",
            "0",
        ],
    )
    assert train.exit_code == 0, train.output
    assert (
        "3 training classes (36 images), 2 validation classes (24 images), 5 unseen classes (60 images)" in train.output
    )
    assert (run / "model" / "config.json").is_file()
    history = json.loads((run / "history.json").read_text())
    epochs = history["selection"]["epochs_run"]
    assert (
        len(history["train_loss"]) == epochs == len(history["validation_r_precision"])
        and "unseen_r_precision" not in history
    )

    evaluate = runner.invoke(app, ["cars", "evaluate", "--run", str(run), "--grid-queries", "3"])
    assert evaluate.exit_code == 0, evaluate.output
    metrics = json.loads((run / "metrics.json").read_text())
    for model in ("base", "tuned"):
        for name in ("r_precision", "map_at_r", "precision_at_1", "recall_at_10", "mrr"):
            assert 0.0 < metrics[model][name] <= 1.0, (model, name)
        # 5 classes: a random ranking would score about 11/59 ~ 0.19 R-Precision
        assert metrics[model]["r_precision"] > 0.25
        assert metrics[model]["map_at_r"] <= metrics[model]["r_precision"] + 1e-9
    assert metrics["queries"]["num_queries"] == 60
    assert metrics["data"]["unseen_classes"] == 5
    for figure in ("metrics.png", "training_curves.png", "retrieval_base.png", "retrieval_tuned.png"):
        assert (run / "figures" / figure).stat().st_size > 1000
    report = (run / "report.html").read_text()
    assert "<h1>Similar cars: frozen encoder vs tuned model</h1>" in report and "was kept" in report
    assert report.count("data:image/png;base64,") == 4
    assert 'src="http' not in report and "src='http" not in report

    # a rerun of the demo shows these metrics instead of evaluating again, only while they are current
    from simtune.apps.images.run.evaluate import current_metrics

    assert current_metrics(run) == {name: value for name, value in metrics.items() if name != "evaluated"}
    for damage in ("edited metrics", "another split", "no report"):
        other = tmp_path / damage.replace(" ", "-")
        shutil.copytree(run, other, ignore=shutil.ignore_patterns("cache"))
        if damage == "edited metrics":
            edited = json.loads((other / "metrics.json").read_text())
            edited["tuned"]["r_precision"] = 0.99
            (other / "metrics.json").write_text(json.dumps(edited))
        elif damage == "another split":
            (other / "split.json").write_text((other / "split.json").read_text() + "\n")
        else:
            (other / "report.html").unlink()
        assert current_metrics(other) is None, damage

    trained_at = (run / "model" / "config.json").stat().st_mtime_ns
    again = runner.invoke(
        app,
        [
            "cars",
            "train",
            "--data",
            str(data),
            "--run",
            str(run),
            "--epochs",
            "3",
            "--classes-per-batch",
            "4",
            "--samples-per-class",
            "4",
            "--workers",
            "0",
        ],
    )
    assert again.exit_code == 0, again.output
    assert (run / "model" / "config.json").stat().st_mtime_ns == trained_at  # already trained: skipped

    # the demo's last stage: index every car, and leave an index that already holds this model alone
    from simtune.apps.images.data.dataset import ImageDataset
    from simtune.apps.images.demo import index_for_demo
    from simtune.search import EdgeIndex

    dataset = ImageDataset.load(run / "dataset.json")
    location, count = index_for_demo(run, dataset)
    assert count == 120 and location.index_dir == run / "index"
    with EdgeIndex.open(run / "index") as index:  # the cars preset's make and year are filterable
        assert {"make": "keyword", "year": "integer"}.items() <= index.schema.filter_fields.items()
    built_at = (run / "index").stat().st_mtime_ns
    assert index_for_demo(run, dataset)[1] == 120
    assert (run / "index").stat().st_mtime_ns == built_at


def test_train_on_an_empty_folder_fails_with_one_clear_line(tmp_path):
    result = CliRunner().invoke(app, ["cars", "train", "--data", str(tmp_path), "--run", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "no recognised layout" in result.output and "Traceback" not in result.output


def test_evaluate_before_train_says_what_to_run(tmp_path):
    result = CliRunner().invoke(app, ["cars", "evaluate", "--run", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "simtune cars train --data PATH" in result.output
