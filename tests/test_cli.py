"""The ``simtune`` entry point: --version, --help, export-onnx."""

import shutil
import subprocess
import sys
from pathlib import Path

import onnxruntime
from typer.testing import CliRunner

import simtune
from simtune.cli import app
from simtune.models import SimilarityModel
from simtune.models.encoders import TorchvisionEncoder
from simtune.models.heads import LinearHead

runner = CliRunner()


def test_console_script_prints_the_version():
    executable = shutil.which("simtune", path=str(Path(sys.executable).parent))
    assert executable, "the simtune console script is not installed next to this Python"
    result = subprocess.run([executable, "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"simtune {simtune.__version__}"


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "export-onnx" in result.output and "images" in result.output and "cars" in result.output


def test_the_core_names_no_app_and_every_registered_app_imports_on_its_own():
    import simtune.cli
    from simtune.apps import APPS

    source = Path(simtune.cli.__file__).read_text()
    assert "simtune.apps." not in source and all(f"apps.{name}" not in source for name in APPS)
    for name, (target, _) in APPS.items():
        module = target.split(":")[0]
        # a fresh interpreter importing only the app: an import circle would fail here
        done = subprocess.run([sys.executable, "-c", f"import {module} as m; print(len(m.app.registered_commands))"],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert int(done.stdout) == 6, name  # train, evaluate, demo, index, search, serve


def test_export_onnx_writes_a_checked_graph(tmp_path):
    encoder = TorchvisionEncoder("mobilenet_v3_small", image_size=64)
    SimilarityModel(encoder, LinearHead(encoder.embedding_size, output_size=16)).save(tmp_path / "model")
    result = runner.invoke(app, ["export-onnx", str(tmp_path / "model"), str(tmp_path / "model.onnx")])
    assert result.exit_code == 0, result.output
    assert "max abs diff vs eager" in result.output
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[1] == 16
    assert session.get_inputs()[0].shape[1:] == [3, 64, 64]  # the encoder's own image size


def test_export_onnx_of_a_missing_model_fails_naming_it(tmp_path):
    result = runner.invoke(app, ["export-onnx", str(tmp_path / "nowhere"), str(tmp_path / "out.onnx")])
    assert result.exit_code != 0
    assert "nowhere" in str(result.exception) and not (tmp_path / "out.onnx").exists()
