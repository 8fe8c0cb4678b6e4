"""The tests' data sets are found through one variable, and their absence fails the test, naming it."""

import pytest
from tests.conftest import DATASETS_VARIABLE, shared_dataset


def test_a_missing_data_set_fails_with_one_line_naming_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(DATASETS_VARIABLE, str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failed:
        shared_dataset("stanford-cars-crop224")
    message = str(failed.value)
    assert len(message.splitlines()) == 1 and DATASETS_VARIABLE in message and str(tmp_path) in message


def test_the_variable_points_to_the_folder_of_data_sets(monkeypatch, tmp_path):
    (tmp_path / "stanford-cars-crop224").mkdir()
    monkeypatch.setenv(DATASETS_VARIABLE, str(tmp_path))
    assert shared_dataset("stanford-cars-crop224") == (tmp_path / "stanford-cars-crop224").resolve()
