import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy_encoders import ToyEncoder

import simtune
from simtune.models import Encoder, EncoderHead, ModelFileError, SimilarityModel, UntrustedClassError
from simtune.models.encoders import EfficientNetLiteEncoder, TorchvisionEncoder
from simtune.models.heads import LinearHead
from simtune.models.registry import BUILTINS, class_reference, register_class, resolve_class
from simtune.models.serialization import file_record

SOURCE_ROOT = Path(simtune.__file__).resolve().parents[1]


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_resolves_to_the_class_that_saves_under_its_name(name):
    cls = resolve_class({"builtin": name}, (Encoder, EncoderHead), source="test")
    assert cls.__name__ == name and class_reference(cls) == {"builtin": name}


def test_a_user_class_resolves_only_when_trusted_or_registered():
    class_path = f"{__name__}:LiteSubclass"
    assert class_reference(LiteSubclass) == {"import_path": class_path}
    with pytest.raises(UntrustedClassError, match=rf"cfg.json: refusing to load class '{class_path}'"):
        resolve_class({"import_path": class_path}, Encoder, source="cfg.json")
    assert resolve_class({"import_path": class_path}, Encoder, "cfg.json", trusted=[LiteSubclass]) is LiteSubclass
    module = sys.modules[__name__]
    assert resolve_class({"import_path": class_path}, Encoder, "cfg.json", trusted=[module]) is LiteSubclass
    assert resolve_class({"import_path": "toy_encoders:ToyEncoder"}, Encoder, source="cfg.json") is ToyEncoder


def test_the_refusal_says_how_to_allow_the_class():
    with pytest.raises(ModelFileError) as refused:
        resolve_class({"import_path": "my_pkg.encoders:MyEncoder"}, Encoder, source="cfg.json")
    message = str(refused.value)
    assert "'my_pkg.encoders:MyEncoder'" in message
    assert "from my_pkg.encoders import MyEncoder" in message
    assert "trusted_classes=[MyEncoder]" in message and "register_class(MyEncoder)" in message


def test_bad_references_name_their_source():
    with pytest.raises(ModelFileError, match="cfg.json: unknown built-in class 'Nope'"):
        resolve_class({"builtin": "Nope"}, Encoder, source="cfg.json")
    with pytest.raises(ModelFileError, match="cfg.json: 'toy_encoders:ToyEncoder' is not a subclass of EncoderHead"):
        resolve_class({"import_path": "toy_encoders:ToyEncoder"}, EncoderHead, source="cfg.json")
    with pytest.raises(ModelFileError, match="neither 'builtin' nor 'import_path'"):
        resolve_class({}, Encoder, source="cfg.json")
    with pytest.raises(ModelFileError, match="neither 'builtin' nor 'import_path'"):
        resolve_class("EmptyHead", EncoderHead, source="cfg.json")


def test_register_class_refuses_what_could_not_be_saved():
    with pytest.raises(TypeError, match="expects a class"):
        register_class(ToyEncoder())

    class Local(ToyEncoder):
        pass

    with pytest.raises(TypeError, match="inside a function"):
        register_class(Local)


def test_an_allowed_user_class_round_trips(tmp_path):
    model = SimilarityModel(LiteSubclass("lite0"), LinearHead(1280, output_size=8))
    model.save(tmp_path / "model")
    with pytest.raises(UntrustedClassError, match="LiteSubclass"):
        SimilarityModel.load(tmp_path / "model")
    loaded = SimilarityModel.load(tmp_path / "model", trusted_classes=[LiteSubclass])
    assert type(loaded.encoders["default"]) is LiteSubclass and loaded.fingerprint() == model.fingerprint()
    assert (
        type(Encoder.load(tmp_path / "model" / "encoders" / "default", trusted_classes=[LiteSubclass])) is LiteSubclass
    )


def _model_naming(tmp_path: Path, class_path: str) -> Path:
    """A saved model whose head config names ``class_path``, with every hash recomputed as an attacker would."""
    model = tmp_path / "model"
    SimilarityModel(TorchvisionEncoder("mobilenet_v3_small", image_size=32), LinearHead(1024, output_size=4)).save(
        model
    )
    head_config = model / "head" / "config.json"
    head_config.write_text(json.dumps({**json.loads(head_config.read_text()), "class": {"import_path": class_path}}))
    top = json.loads((model / "config.json").read_text())
    top["files"]["head/config.json"] = file_record(head_config)
    (model / "config.json").write_text(json.dumps(top))
    return model


def _load_in_a_fresh_python(cwd: Path) -> subprocess.CompletedProcess:
    """``python -c`` started in ``cwd``: its sys.path starts with ``cwd``, as in a REPL or Jupyter."""
    code = (
        "import sys\n"
        "from simtune.models import ModelFileError, SimilarityModel\n"
        "before = set(sys.modules)\n"
        "try:\n"
        "    SimilarityModel.load('model')\n"
        "except ModelFileError as error:\n"
        "    print('REFUSED', error)\n"
        "print('NEW MODULES', sorted(m for m in set(sys.modules) - before if not m.startswith(('simtune', 'torch'))))\n"
    )
    env = {"PYTHONPATH": str(SOURCE_ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


PAYLOAD = "from pathlib import Path\nPath(__file__).with_name('{marker}').write_text('ran')\nclass X: pass\n"


def test_loading_never_runs_a_module_shipped_beside_or_inside_the_model(tmp_path):
    model = _model_naming(tmp_path, "payload:X")
    (tmp_path / "payload.py").write_text(PAYLOAD.format(marker="ran-beside"))
    (model / "payload.py").write_text(PAYLOAD.format(marker="ran-inside"))
    result = _load_in_a_fresh_python(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "ran-beside").exists() and not (model / "ran-inside").exists()
    assert "REFUSED" in result.stdout and "'payload:X'" in result.stdout and "trusted_classes" in result.stdout
    assert "'payload'" not in result.stdout.split("NEW MODULES")[1]


def test_loading_never_imports_an_installed_module_a_config_names(tmp_path):
    _model_naming(tmp_path, "this:X")
    result = _load_in_a_fresh_python(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Beautiful is better than ugly" not in result.stdout  # what importing `this` prints
    assert "REFUSED" in result.stdout and "'this:X'" in result.stdout
    assert "'this'" not in result.stdout.split("NEW MODULES")[1]


def test_a_trusted_module_does_not_widen_to_other_modules(tmp_path):
    model = _model_naming(tmp_path, "json:JSONDecoder")
    with pytest.raises(UntrustedClassError):
        SimilarityModel.load(model, trusted_classes=[torch.nn])
    with pytest.raises(ModelFileError, match="is not a subclass of EncoderHead"):
        SimilarityModel.load(model, trusted_classes=[json])


class LiteSubclass(EfficientNetLiteEncoder):
    pass
