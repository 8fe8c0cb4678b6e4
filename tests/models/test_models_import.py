import subprocess
import sys


def test_importing_simtune_models_does_not_import_lightning():
    code = (
        "import sys, simtune.models, simtune.models.encoders, simtune.models.heads; "
        "from simtune.models import SimilarityModel; "
        "heavy = [m for m in ('lightning', 'pytorch_lightning', 'torchvision') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
