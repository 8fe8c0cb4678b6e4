"""Quaterion's import paths, with ``quaterion`` replaced by ``simtune``, fail naming simtune's module instead."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Quaterion's module (as a ported import spells it) -> the simtune module that holds its names
RENAMED = {
    "simtune.loss": "simtune.losses",
    "simtune.dataset": "simtune.data",
    "simtune.eval.pair": "simtune.eval",
    "simtune.eval.group": "simtune.eval",
    "simtune.main": "simtune",
    "simtune_models": "simtune.models",
}
DOCS = Path(__file__).resolve().parents[1] / "docs"


def import_error(path: str) -> ModuleNotFoundError:
    with pytest.raises(ModuleNotFoundError) as error:
        importlib.import_module(path)
    return error.value


@pytest.mark.parametrize("old", RENAMED)
def test_a_renamed_path_names_the_simtune_module_and_names_that_exist_there(old: str):
    error = import_error(old)
    message = str(error)
    new = RENAMED[old]
    assert error.name == old and "\n" not in message
    assert message.startswith(f"No module named {old!r}: Quaterion's {old.replace('simtune', 'quaterion', 1)} is ")
    escaped = re.escape(new)
    suggestion = re.search(rf" is {escaped} in simtune \(from {escaped} import (.*)\); see (\S+)$", message)
    assert suggestion, message
    assert (DOCS.parent / suggestion.group(2)).is_file()
    module = importlib.import_module(new)
    for name in set(re.findall(r"[A-Za-z_][\w.]*", suggestion.group(1))) - {"or"}:
        if "." in name:  # a module to import from instead
            importlib.import_module(name)
        else:
            assert hasattr(module, name), f"{new} has no {name}, as {old}'s message says"


@pytest.mark.parametrize(
    ("below", "old"),
    [("simtune.loss.triplet_loss", "simtune.loss"), ("simtune.eval.pair.retrieval_precision", "simtune.eval.pair")],
)
def test_a_module_below_a_renamed_path_names_the_simtune_module_too(below: str, old: str):
    error = import_error(below)  # Python imports the renamed parent first, which fails naming its new module
    assert error.name == old
    assert f"Quaterion's quaterion{old.removeprefix('simtune')} is {RENAMED[old]} in simtune" in str(error)


@pytest.mark.parametrize(
    "path", ["simtune.losses.triplet_loss", "simtune.eval.attached_metric", "simtune.eval.samplers.pair_sampler"]
)
def test_paths_simtune_has_import_as_they_are(path: str):
    assert importlib.import_module(path).__name__ == path


def test_an_unrelated_missing_module_keeps_the_plain_error():
    error = import_error("simtune.lossy")  # shares a prefix with simtune.loss, is no module below it
    assert str(error) == "No module named 'simtune.lossy'"


def test_a_fresh_interpreter_reports_a_quaterion_style_import_in_one_line():
    result = subprocess.run(
        [sys.executable, "-c", "from simtune.loss import TripletLoss"], capture_output=True, text=True
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: No module named 'simtune.loss': Quaterion's quaterion.loss is "), last
    assert "from simtune.losses import " in last
