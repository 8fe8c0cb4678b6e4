"""A run that dies after epoch k and is resumed from ``last`` ends where an uninterrupted run ends."""

import lightning.pytorch as pl
import pytest
import torch
from train_fakes import GroupImages, TinyTrainable

import simtune
from simtune.data import GroupSimilarityDataLoader
from simtune.train import CacheConfig, XbmConfig

EPOCHS, CRASH_AT = 4, 2


class Crash(pl.Callback):
    """Dies at the start of an epoch: every earlier epoch is complete and checkpointed."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == CRASH_AT:
            raise RuntimeError("simulated crash")


def _run(root, ckpt_path=None, crash=False, **model_kwargs):
    pl.seed_everything(0)
    model = TinyTrainable(metrics=False, **model_kwargs)
    train = GroupSimilarityDataLoader(GroupImages(seed=0), batch_size=10, shuffle=True)
    val = GroupSimilarityDataLoader(GroupImages(seed=100), batch_size=16)
    callbacks = [pl.callbacks.ModelCheckpoint(save_last=True)] + ([Crash()] if crash else [])
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        default_root_dir=root,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    simtune.fit(model, trainer, train, val, ckpt_path=ckpt_path)
    return model, trainer


@pytest.mark.parametrize(
    "model_kwargs",
    [{"cache": CacheConfig()}, {"trainable_encoder": True}, {"cache": CacheConfig(), "xbm": XbmConfig(64, 2, 0.5)}],
    ids=["cached_frozen_encoder", "trainable_encoder", "xbm"],
)
def test_resume_from_last_matches_uninterrupted_run(tmp_path, model_kwargs):
    reference, _ = _run(tmp_path / "reference", **model_kwargs)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "crashed", crash=True, **model_kwargs)
    resumed, trainer = _run(tmp_path / "crashed", ckpt_path="last", **model_kwargs)
    assert trainer.current_epoch == EPOCHS
    expected = reference.state_dict()
    for key, value in resumed.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=1e-6, msg=key)


def test_checkpoint_holds_trainable_parts_only(tmp_path):
    model, trainer = _run(tmp_path, cache=CacheConfig())
    checkpoint = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert checkpoint["state_dict"] and all(not key.startswith("_model.encoders.") for key in checkpoint["state_dict"])
    assert any(key.startswith("_model.head.") for key in checkpoint["state_dict"])


def test_resume_refuses_a_different_frozen_encoder(tmp_path):
    _run(tmp_path, cache=CacheConfig())
    pl.seed_everything(0)
    other = TinyTrainable(metrics=False)
    with torch.no_grad():
        other.model.encoders["default"].net[0].weight.mul_(2)
    train = GroupSimilarityDataLoader(GroupImages(), batch_size=10)
    trainer = pl.Trainer(max_epochs=EPOCHS + 1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="different weights for frozen encoder 'default'"):
        simtune.fit(other, trainer, train, ckpt_path=str(tmp_path / "checkpoints" / "last.ckpt"))
