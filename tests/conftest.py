"""Where the tests find the shared data sets: one folder, named by one environment variable.

``SIMTUNE_DATASETS`` (default ``../shared/datasets``; a relative path is read from the repository root) holds
``stanford-cars-crop224/`` and the other data sets. A test that needs a data set that is not there fails with
one line naming the variable; it never skips, so a machine without the data cannot pass for one with it.
"""

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
DATASETS_VARIABLE = "SIMTUNE_DATASETS"
DEFAULT_DATASETS = "../shared/datasets"


def shared_dataset(name: str) -> Path:
    """The folder of the shared data set ``name``, or the test fails saying how to point to it."""
    folder = REPOSITORY / os.environ.get(DATASETS_VARIABLE, DEFAULT_DATASETS) / name
    if not folder.is_dir():
        pytest.fail(
            f"{folder} not found: set {DATASETS_VARIABLE} to the folder holding {name}/ "
            f"(default {DEFAULT_DATASETS}, from the repository root)",
            pytrace=False,
        )
    return folder.resolve()


@pytest.fixture(scope="session")
def cars_data() -> Path:
    """Stanford Cars, cropped to 224 x 224: ``images/<class>/*.jpg``, ``labels.csv``, ``classes.csv``."""
    return shared_dataset("stanford-cars-crop224")
