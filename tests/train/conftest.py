"""Shared by tests/train/**: this folder is on sys.path (pytest prepends a conftest's folder), so the
fakes in ``train_fakes`` import from every test below it."""

import lightning.pytorch as pl
import pytest


@pytest.fixture
def quiet_trainer(tmp_path):
    """A small CPU Trainer factory: no logger, no progress bar, checkpoints under tmp_path."""

    def make(epochs: int = 2, **kwargs) -> pl.Trainer:
        kwargs = {"enable_progress_bar": False, "logger": False, "enable_model_summary": False} | kwargs
        return pl.Trainer(max_epochs=epochs, accelerator="cpu", default_root_dir=tmp_path, **kwargs)

    return make
