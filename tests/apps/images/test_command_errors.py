"""Every app command reports bad input the same way, and binds its app's preset the same way."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from simtune.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "arguments",
    [
        ["train", "--data", "{empty}", "--run", "{run}"],
        ["demo", "--data", "{empty}", "--run", "{run}"],
        ["evaluate", "--run", "{run}"],
        ["index", "--data", "{empty}", "--run", "{run}"],
        ["index", "--data", "{empty}/typo", "--run", "{run}"],
        ["train", "--data", "{empty}/typo", "--run", "{run}"],
        ["search", "{empty}/query.jpg", "--run", "{run}"],
        ["serve", "--run", "{run}"],
    ],
    ids=lambda arguments: arguments[0] + ("-missing-data" if "{empty}/typo" in arguments else ""),
)
def test_bad_input_is_one_error_line_and_exit_code_2(arguments, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    filled = [a.format(empty=tmp_path / "empty", run=tmp_path / "runs" / "new") for a in arguments]
    result = runner.invoke(app, ["cars", *filled])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert lines[-1] == errors[0], result.output  # nothing after it: the one line says it all
    assert "simtune images " not in errors[0]  # a suggested command is this app's
    assert not (tmp_path / "runs").exists()  # a command failing on its input leaves no run folder (nor parent)


def test_a_folder_in_no_known_layout_is_one_line_naming_it_and_the_layouts_looked_for(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["images", "train", "--data", str(tmp_path / "empty"), "--run", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"error: {tmp_path / 'empty'}: no recognised layout")
    assert "labels.csv (" in line and "image-folder (" in line


def test_the_preset_sets_the_run_folder_collection_and_data_help_of_every_command():
    import typer.main

    from simtune.apps.cars.cli import app as cars

    commands = {c.name: c for c in typer.main.get_command(cars).commands.values()}
    assert set(commands) == {"train", "evaluate", "demo", "index", "search", "serve"}
    for name, command in commands.items():
        options = {p.name: p for p in command.params}
        assert options["run"].default == Path("runs") / "cars", name
        if "collection" in options:
            assert options["collection"].default == "cars", name
        if name in ("train", "demo"):
            assert "labelled cars photos" in options["data"].help and "stanford-cars-mat" in options["data"].help, name


def test_index_refusing_its_data_leaves_an_existing_run_as_it_was(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "run").mkdir()
    result = runner.invoke(app, ["images", "index", "--data", str(tmp_path / "empty"), "--run", str(tmp_path / "run")])
    assert result.exit_code == 2 and "no images found" in result.stderr, result.output
    assert (tmp_path / "run").is_dir()  # the folder was there before: kept
    assert not (tmp_path / "run" / "model").exists()  # the pretrained model is saved only once it has indexed


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (lambda c, i: f"not an image {c} {i}", "none of its 36 images could be read"),
        (lambda c, i: "the same bytes", "no image left once byte-identical copies labelled with different classes"),
    ],
    ids=["unreadable", "all-identical"],
)
def test_a_folder_of_no_usable_image_is_one_line_and_leaves_no_run_folder(tmp_path: Path, content, says):
    for c in range(12):
        (tmp_path / "data" / f"class {c}").mkdir(parents=True)
        for i in range(3):
            (tmp_path / "data" / f"class {c}" / f"{i}.jpg").write_text(content(c, i))
    data, run = tmp_path / "data", tmp_path / "run"
    result = runner.invoke(app, ["images", "train", "--data", str(data), "--run", str(run), "--workers", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {data}: {says}"), result.stderr
    assert not run.exists()  # the split is saved with the dataset, once the data has proved usable
