"""A run folder survives what happens to real runs: a second writer, `kill -9`, a damaged checkpoint, a full
disk. Each is one line, and nothing written before is lost."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from tests.apps.conftest import write_shapes_collection
from typer.testing import CliRunner

import simtune
from simtune import atomic
from simtune.apps.images.data.run_folder import Run
from simtune.cli import app
from simtune.folder_lock import holder
from simtune.models import SimilarityModel

SOURCE_ROOT = Path(simtune.__file__).resolve().parents[1]
runner = CliRunner()
# A small, quick run: pooled lite0 features, a linear head, a few short epochs.
FAST = ["--head", "linear", "--patience", "5", "--samples-per-class", "2", "--min-batches-per-epoch", "3"]
FAST += ["--workers", "0"]


def _train_args(data: Path, run: Path, epochs: int = 3) -> list[str]:
    return ["images", "train", "--data", str(data), "--run", str(run), "--epochs", str(epochs), *FAST]


def _wait_for(condition, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and lines[-1].startswith("error: "), result.output
    return lines[-1]


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".staging-" in p.name or ".retired-" in p.name]


@pytest.mark.slow
def test_a_second_writer_is_refused_a_killed_train_resumes_and_a_damaged_checkpoint_starts_over(tmp_path: Path):
    data = write_shapes_collection(tmp_path / "shapes", classes=9, per_class=6)
    run = tmp_path / "run"
    code = "import sys; from simtune.cli import main; sys.argv[0] = 'simtune'; main()"
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT))
    first = subprocess.Popen(
        [sys.executable, "-c", code, *_train_args(data, run, epochs=30)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: holder(run) is not None)
        second = runner.invoke(app, _train_args(data, run))
        refusal = _one_error_line(second)
        assert refusal.startswith(f"error: {run} is in use by pid {first.pid} on ")
        assert "(`simtune images train --data" in refusal and ", since 20" in refusal
        index = runner.invoke(app, ["images", "index", "--data", str(data), "--run", str(run)])
        assert index.exit_code != 0 and f"{run} is in use by pid {first.pid}" in index.output
        _wait_for(lambda: (run / "checkpoints" / "last.ckpt").is_file())  # mid-training, at least one epoch in
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    resumed = runner.invoke(app, _train_args(data, run))
    assert resumed.exit_code == 0, resumed.output
    assert "kept epoch" in resumed.output and _leftovers(run) == []
    settings = json.loads(Run(run).settings_file.read_text())
    history = json.loads(Run(run).history_file.read_text())
    assert settings["epochs"] == 3 and history["selection"]["max_epochs"] == 3
    model = SimilarityModel.load(run / "model")
    assert model.embedding_size > 0

    # A checkpoint cut short (a crash or a full disk while it was written): set aside, training starts over.
    last = run / "checkpoints" / "last.ckpt"
    cut = last.read_bytes()[: last.stat().st_size // 2]
    last.write_bytes(cut)
    shutil.rmtree(run / "model")  # as if killed before the model was saved: the next train resumes
    again = runner.invoke(app, _train_args(data, run))
    assert again.exit_code == 0, again.output
    warning = next(line for line in again.output.splitlines() if line.startswith("warning: "))
    assert warning.startswith(f"warning: {last} is damaged (")
    assert "the checkpoints are set aside as" in warning and warning.endswith("and training starts over")
    aside = [p for p in run.iterdir() if p.name.startswith("checkpoints.damaged-")]
    assert len(aside) == 1 and (aside[0] / "last.ckpt").read_bytes() == cut  # renamed, not deleted
    with zipfile.ZipFile(last) as archive:  # the new one is whole
        assert archive.testzip() is None
    assert json.loads(Run(run).history_file.read_text())["selection"]["epochs_run"] >= 1

    # A full disk while evaluating: one line naming the run folder; what was written before is unchanged.
    evaluated = runner.invoke(app, ["images", "evaluate", "--run", str(run), "--grid-queries", "2"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = Run(run).metrics_file.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(atomic.os, "replace", disk_full)
        full = runner.invoke(app, ["images", "evaluate", "--run", str(run), "--grid-queries", "2"])
    assert _one_error_line(full).startswith(f"error: no space left on the device holding {run}")
    assert Run(run).metrics_file.read_bytes() == metrics


def test_a_full_disk_while_training_is_one_line_naming_the_run_folder(tmp_path: Path, monkeypatch):
    data = write_shapes_collection(tmp_path / "shapes", classes=9, per_class=3)
    run = tmp_path / "run"

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:  # the first file the run writes
        patch.setattr(atomic.os, "replace", disk_full)
        full = runner.invoke(app, _train_args(data, run))
    assert _one_error_line(full) == (
        f"error: no space left on the device holding {run}: free some space there and run again "
        "(what was there before is unchanged)"
    )

    def lightning_checkpoint_on_a_full_disk(*args, **kwargs):  # torch.save says only this, no errno
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    import simtune.apps.images.run.train as train_module

    monkeypatch.setattr(train_module, "train_run", lightning_checkpoint_on_a_full_disk)
    monkeypatch.setattr(atomic, "_nearly_full", lambda folder: Path(folder) == run)
    full = runner.invoke(app, _train_args(data, run))
    assert _one_error_line(full).startswith(f"error: no space left on the device holding {run}: ")
