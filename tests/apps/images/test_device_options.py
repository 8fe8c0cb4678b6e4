"""``--device`` on every command that encodes images, ``--devices``/``--num-nodes`` on train: absent hardware is one
line before anything is written, and two CPU processes train one run through Lightning's DDP."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.apps.conftest import write_image
from typer.testing import CliRunner

import simtune
from simtune.cli import app
from simtune.folder_lock import RANK_VARIABLES, holder

runner = CliRunner()
SOURCE_ROOT = Path(simtune.__file__).resolve().parents[1]

COMMANDS = {
    "train": ["train", "--data", "{data}", "--run", "{run}"],
    "demo": ["demo", "--data", "{data}", "--run", "{run}"],
    "evaluate": ["evaluate", "--run", "{run}"],
    "index": ["index", "--data", "{data}", "--run", "{run}"],
    "search": ["search", "{data}/class 00/0.jpg", "--run", "{run}"],
    "serve": ["serve", "--run", "{run}", "--port", "1"],
}


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def noise_collection(root: Path, classes: int, per_class: int) -> Path:
    for c in range(classes):
        for i in range(per_class):
            write_image(root / f"class {c:02d}" / f"{i}.jpg", seed=10 * c + i)
    return root


def _contents(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_cuda_without_a_gpu_is_one_line_and_nothing_is_written(command, tmp_path, no_gpu):
    data = noise_collection(tmp_path / "data", classes=2, per_class=2)
    existing = tmp_path / "existing-run"  # a run folder that is there: left exactly as it was
    (existing / "model").mkdir(parents=True)
    (existing / "notes.txt").write_text("kept")
    before = _contents(data), _contents(existing)
    for run in (tmp_path / "new-run", existing):
        arguments = [a.format(data=data, run=run) for a in COMMANDS[command]]
        error = _one_error_line(runner.invoke(app, ["images", *arguments, "--device", "cuda"]))
        assert "'cuda'" in error and "no CUDA GPU" in error and "--device cpu" in error, error
    assert not (tmp_path / "new-run").exists()
    assert (_contents(data), _contents(existing)) == before


def test_more_training_processes_than_the_machine_has_is_one_line(tmp_path, monkeypatch):
    data = noise_collection(tmp_path / "data", classes=2, per_class=2)
    monkeypatch.setattr("simtune.devices.cpu_count", lambda: 2)
    arguments = ["images", "train", "--data", str(data), "--run", str(tmp_path / "run"), "--device", "cpu"]
    error = _one_error_line(runner.invoke(app, [*arguments, "--devices", "4"]))
    assert "--devices 4 on the CPU: this process may use 2 CPU core(s)" in error
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    error = _one_error_line(runner.invoke(app, [*arguments[:-1], "cuda", "--devices", "4"]))
    assert "--devices 4: this machine has 2 CUDA GPU(s)" in error
    error = _one_error_line(runner.invoke(app, [*arguments, "--num-nodes", "0"]))
    assert "--num-nodes 0" in error
    assert not (tmp_path / "run").exists()


def test_search_and_serve_encode_queries_on_the_cpu_unless_asked():
    import typer.main

    from simtune.apps.cars.cli import app as cars

    commands = {c.name: c for c in typer.main.get_command(cars).commands.values()}
    defaults = {name: {p.name: p.default for p in c.params}.get("device") for name, c in commands.items()}
    assert defaults == {
        "train": "auto",
        "demo": "auto",
        "evaluate": "auto",
        "index": "auto",
        "search": "cpu",
        "serve": "cpu",
    }


TRAIN = ["images", "train", "--head", "linear", "--epochs", "2", "--patience", "2", "--classes-per-batch", "2"]
TRAIN += ["--samples-per-class", "2", "--min-batches-per-epoch", "2", "--workers", "0"]
TRAIN += ["--device", "cpu", "--devices", "2"]


def _train_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES} | {"PYTHONPATH": str(SOURCE_ROOT)}


@pytest.fixture(scope="module")
def lightning_ddp_run(tmp_path_factory) -> tuple[Path, Path, str]:
    """A run trained by two gloo CPU processes that Lightning launched (it reruns the command as rank 1)."""
    root = tmp_path_factory.mktemp("ddp")
    data = noise_collection(root / "data", classes=16, per_class=3)  # 6 training classes: 2 per batch, each
    run = root / "run"
    command = [sys.executable, "-m", "simtune", *TRAIN, "--data", str(data), "--run", str(run)]
    train = subprocess.run(command, capture_output=True, text=True, env=_train_env(), timeout=600)
    assert train.returncode == 0, train.stdout + train.stderr
    return data, run, train.stdout + train.stderr


def _head(run: Path) -> dict[str, torch.Tensor]:
    from simtune.models import SimilarityModel

    return SimilarityModel.load(run / "model").head.state_dict()


@pytest.mark.slow
def test_two_cpu_processes_train_one_run_through_the_cli_then_every_command_runs_on_the_cpu(
    lightning_ddp_run, monkeypatch
):
    data, run, output = lightning_ddp_run
    # Lightning reran the command as rank 1, which trusted rank 0's lock of the run folder
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output and "is in use by" not in output, output
    assert output.count("kept epoch") == 1 and output.count("servable model") == 1, output  # rank 0 reports
    history = json.loads((run / "history.json").read_text())
    assert [epoch for epoch, _ in history["train_loss"]] == [1, 2]
    assert (run / "model" / "config.json").is_file() and holder(run) is None

    used = []
    from simtune.apps.images.run import features

    def recording(spec):
        used.append(spec)
        return torch.device(spec)

    monkeypatch.setattr(features, "select_device", recording)
    evaluate = runner.invoke(app, ["images", "evaluate", "--run", str(run), "--grid-queries", "2", "--device", "cpu"])
    assert evaluate.exit_code == 0, evaluate.output
    assert used == ["cpu"] and (run / "metrics.json").is_file()
    index = runner.invoke(app, ["images", "index", "--data", str(data), "--run", str(run), "--device", "cpu"])
    assert index.exit_code == 0, index.output
    assert used == ["cpu", "cpu"]  # the training collection's vectors come from the run's cache, read on the cpu
    photo = data / "class 03" / "1.jpg"
    found = runner.invoke(app, ["images", "search", str(photo), "--run", str(run), "--json", "--device", "cpu"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)[0]["path"].endswith("class 03/1.jpg")


@pytest.mark.slow
def test_torchrun_trains_the_same_run_as_lightnings_launcher_encoding_a_shard_per_process(lightning_ddp_run):
    data, lightning_run, _ = lightning_ddp_run
    run = lightning_run.with_name("torchrun")
    # one string: torchrun's own parser would take --run for its --run-path
    command = shlex.join([sys.executable, "-m", "simtune", *TRAIN, "--data", str(data), "--run", str(run)])
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python"]
    train = subprocess.run(
        [*launch, "sh", "-c", command], capture_output=True, text=True, env=_train_env(), timeout=600
    )
    output = train.stdout + train.stderr
    assert train.returncode == 0, output
    assert output.count("kept epoch") == 1 and "is in use by" not in output, output
    shards = [int(count) for count in re.findall(r"Caching (\d+) items", output)]
    assert shards and max(shards) < 48, output  # each process encoded its shard of the 48 images
    entries = [sorted(p.name for p in (r / "cache").iterdir()) for r in (lightning_run, run)]
    assert entries[0] == entries[1]  # the very cache entries one process writes
    histories = [json.loads((r / "history.json").read_text()) for r in (lightning_run, run)]
    losses = [[loss for _, loss in history["train_loss"]] for history in histories]
    assert len(losses[1]) == 2 and losses[1] == pytest.approx(losses[0], rel=1e-5)
    ours, theirs = _head(run), _head(lightning_run)
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-5) for k in ours)
