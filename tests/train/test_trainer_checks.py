"""fit() names the simtune form when it is handed Quaterion's Lightning objects or metric keys."""

import lightning.pytorch as pl
import pytest
import pytorch_lightning
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from train_fakes import GroupImages, TinyTrainable

import simtune
from simtune.data import GroupSimilarityDataLoader
from simtune.eval import AttachedMetric, RetrievalRPrecision


class RRPTrainable(TinyTrainable):
    def configure_metrics(self):
        return AttachedMetric("rrp", metric=RetrievalRPrecision(), prog_bar=True, on_epoch=True, on_step=False)


def loaders():
    return (
        GroupSimilarityDataLoader(GroupImages(), batch_size=16, shuffle=True),
        GroupSimilarityDataLoader(GroupImages(seed=100), batch_size=16),
    )


def test_a_pytorch_lightning_trainer_is_refused_naming_lightning_pytorch(tmp_path):
    trainer = pytorch_lightning.Trainer(max_epochs=1, logger=False, default_root_dir=tmp_path)
    with pytest.raises(TypeError, match="simtune is built on lightning.pytorch: `import lightning.pytorch as pl`"):
        simtune.fit(TinyTrainable(), trainer, *loaders())


def test_pytorch_lightning_callbacks_are_refused(tmp_path):
    callback = pytorch_lightning.callbacks.EarlyStopping(monitor="validation_loss")
    try:
        trainer = pl.Trainer(max_epochs=1, logger=False, default_root_dir=tmp_path, callbacks=[callback])
    except Exception as error:  # Lightning itself may refuse a foreign callback; then it says so
        pytest.fail(f"lightning.pytorch.Trainer refused the callback itself: {error}")
    with pytest.raises(TypeError, match="EarlyStopping.*import them from lightning.pytorch.callbacks"):
        simtune.fit(TinyTrainable(), trainer, *loaders())


@pytest.mark.parametrize(
    "callback", [EarlyStopping(monitor="rrp_validation"), ModelCheckpoint(monitor="rrp_validation")]
)
def test_quaterions_metric_key_is_refused_naming_simtunes(tmp_path, callback):
    trainer = pl.Trainer(max_epochs=1, logger=False, default_root_dir=tmp_path, callbacks=[callback])
    with pytest.raises(ValueError, match="monitor='rrp_validation'.*Quaterion's key.*monitor='validation_rrp'"):
        simtune.fit(RRPTrainable(), trainer, *loaders())


def test_monitoring_an_attached_metric_works(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="validation_rrp", mode="max")
    stopping = EarlyStopping(monitor="validation_rrp", mode="max", patience=10)
    trainer = pl.Trainer(
        max_epochs=3,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[checkpoint, stopping],
    )
    simtune.fit(RRPTrainable(), trainer, *loaders())
    assert 0 < float(trainer.callback_metrics["validation_rrp"]) <= 1
    assert checkpoint.best_model_path  # the best of the monitored values, as early stopping saw it too
    assert float(checkpoint.best_model_score) == float(stopping.best_score)
