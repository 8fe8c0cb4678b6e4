"""The ``simtune`` entry point: --version, --help, export-onnx."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest
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


def test_every_installed_app_is_mounted_and_imports_on_its_own():
    from importlib.metadata import entry_points

    from simtune.cli import APPS_GROUP

    apps = {entry.name: entry.value for entry in entry_points(group=APPS_GROUP)}
    assert {"images", "cars"} <= set(apps)
    mounted = {group.name: group.typer_instance.info.help for group in app.registered_groups}
    assert set(mounted) == set(apps) and all(mounted.values()), mounted  # each with its line in --help
    for name, target in apps.items():
        module = target.split(":")[0]
        # a fresh interpreter importing only the app: an import circle would fail here
        done = subprocess.run(
            [sys.executable, "-c", f"import {module} as m; print(len(m.app.registered_commands))"],
            capture_output=True,
            text=True,
        )
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
    assert result.exit_code == 2 and result.output.strip() == f"error: {tmp_path / 'nowhere'}: no such model folder"
    assert not (tmp_path / "out.onnx").exists()


def _saved_model(path):
    encoder = TorchvisionEncoder("mobilenet_v3_small", image_size=32)
    SimilarityModel(encoder, LinearHead(encoder.embedding_size, output_size=4)).save(path)
    return path


def test_export_onnx_of_a_damaged_model_prints_one_line_naming_the_file(tmp_path):
    weights = _saved_model(tmp_path / "model") / "head" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    result = runner.invoke(app, ["export-onnx", str(tmp_path / "model"), str(tmp_path / "out.onnx")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(weights) in lines[0], result.output
    assert "edited or damaged" in lines[0] and not (tmp_path / "out.onnx").exists()


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_export_onnx_whose_graph_fails_the_check_prints_one_line(tmp_path, monkeypatch):
    _saved_model(tmp_path / "model")
    # A head whose traced graph keeps the tracing batch size, as EfficientNetLiteTopHead's once did.
    monkeypatch.setattr(LinearHead, "transform", lambda self, x: self.fc(x.reshape(len(x), -1)))
    result = runner.invoke(app, ["export-onnx", str(tmp_path / "model"), str(tmp_path / "out.onnx")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "fails in onnxruntime at batch size" in lines[0], result.output
    assert not (tmp_path / "out.onnx").exists()


def test_export_onnx_of_a_user_class_needs_trust_naming_its_module(tmp_path, monkeypatch):
    (tmp_path / "my_heads.py").write_text(
        "from simtune.models.heads import LinearHead\n\nclass MyHead(LinearHead):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from my_heads import MyHead

    encoder = TorchvisionEncoder("mobilenet_v3_small", image_size=32)
    SimilarityModel(encoder, MyHead(encoder.embedding_size, output_size=4)).save(tmp_path / "model")
    arguments = ["export-onnx", str(tmp_path / "model"), str(tmp_path / "out.onnx")]
    refused = runner.invoke(app, arguments)
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "'my_heads:MyHead'" in refused.output and refused.output.strip().endswith("--trust my_heads")
    missing = runner.invoke(app, [*arguments, "--trust", "no_such_module_anywhere"])
    assert missing.exit_code == 2 and "--trust no_such_module_anywhere: cannot import it" in missing.output
    trusted = runner.invoke(app, [*arguments, "--trust", "my_heads"])
    assert trusted.exit_code == 0, trusted.output
    assert (tmp_path / "out.onnx").is_file()


def test_commands_print_their_own_lines_not_lightnings_adverts_or_raw_warnings(tmp_path):
    """A command that builds a Lightning Trainer and hits a warning: no accelerator summary, no tips about
    Lightning's cloud products, and the warning as one line without Python's source line."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import warnings\n"
        "from simtune.cli import app\n"
        "@app.command('probe')\n"
        "def probe():\n"
        "    import lightning.pytorch as pl\n"
        "    pl.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)\n"
        "    from lightning.pytorch.utilities import rank_zero_info\n"
        "    rank_zero_info('Tip: try installing litlogger')\n"
        "    warnings.warn('the folder holds 3 files\\n  nobody asked for')\n"
        "app()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(simtune.__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, str(script), "probe"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "GPU available" not in output and "litlogger" not in output and "Tip" not in output
    assert output.splitlines() == ["warning: the folder holds 3 files nobody asked for"]


@pytest.mark.parametrize(
    "command, device", [("train", "cuda"), ("train", "cuda:1"), ("train", "tpu"), ("demo", "cuda")]
)
def test_training_on_absent_hardware_is_one_error_line(tmp_path, command, device):
    """No GPU is visible (CUDA_VISIBLE_DEVICES empty, on any machine): asking for one fails before any work."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(Path(simtune.__file__).resolve().parents[1]))
    run = tmp_path / "run"
    simtune_script = shutil.which("simtune", path=str(Path(sys.executable).parent))
    arguments = [simtune_script, "images", command, "--data", str(tmp_path), "--run", str(run)]
    result = subprocess.run([*arguments, "--device", device], capture_output=True, text=True, env=env)
    assert result.returncode != 0, result.stdout + result.stderr  # the app's one error exit code
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: device") and repr(device) in lines[0], result.stderr
    assert "Traceback" not in result.stderr
