"""``import simtune`` stays light; the training names it offers load on first use."""

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_top_level_names_import_lazily():
    code = (
        "import sys, simtune; "
        "assert 'lightning' not in sys.modules and 'simtune.train' not in sys.modules; "
        "from simtune import TrainableModel, SimilarityModel, fit, evaluate; "
        "from simtune.train import TrainableModel as T, fit as f; "
        "from simtune.models import SimilarityModel as S; from simtune.eval import evaluate as e; "
        "assert (TrainableModel, SimilarityModel, fit, evaluate) == (T, S, f, e); "
        "assert {'TrainableModel', 'SimilarityModel', 'fit', 'evaluate'} <= set(dir(simtune))"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr


def test_unknown_names_raise_attribute_error_and_quaterion_names_the_simtune_form():
    result = run("import simtune; simtune.Trainer")
    assert result.returncode != 0 and "module 'simtune' has no attribute 'Trainer'" in result.stderr
    result = run("import simtune; simtune.Quaterion")
    assert result.returncode != 0 and "Quaterion.fit(...) is simtune.fit(...)" in result.stderr
