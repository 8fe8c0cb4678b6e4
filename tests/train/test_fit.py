import copy

import lightning.pytorch as pl
import pytest
import torch
from train_fakes import GroupImages, PairImages, TinyConvEncoder, TinyTrainable

import simtune
from simtune.data import ClassBalancedBatchSampler, GroupSimilarityDataLoader, PairsSimilarityDataLoader, pass_through
from simtune.train import CacheConfig
from simtune.train.fit import default_trainer


class ValidationHistory(pl.Callback):
    """validation_loss after every validation run, the sanity check (before any training) first."""

    def __init__(self):
        self.losses: list[float] = []

    def on_validation_end(self, trainer, pl_module):
        self.losses.append(float(trainer.callback_metrics["validation_loss"]))


def _trainer(tmp_path, epochs: int = 6, **kwargs) -> pl.Trainer:
    kwargs = {"enable_progress_bar": False, "logger": False, "enable_model_summary": False} | kwargs
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", default_root_dir=tmp_path, **kwargs)


def _fit_with_history(model, tmp_path, train, val, epochs: int, **kwargs) -> tuple[pl.Trainer, list[float]]:
    history = ValidationHistory()
    trainer = _trainer(tmp_path, epochs=epochs, callbacks=[history], num_sanity_val_steps=-1, **kwargs)
    simtune.fit(model, trainer, train, val)
    return trainer, history.losses


def _loaders(seed: int = 0):
    train = GroupSimilarityDataLoader(GroupImages(seed=seed), batch_size=16, shuffle=True)
    val = GroupSimilarityDataLoader(GroupImages(seed=seed + 100), batch_size=16)
    return train, val


@pytest.mark.parametrize("cache", [None, CacheConfig()], ids=["no_cache", "cache"])
def test_fit_learns_logs_plain_names_and_keeps_frozen_encoder_still(tmp_path, cache):
    pl.seed_everything(0)
    model = TinyTrainable(cache=cache)
    encoder_before = copy.deepcopy(model.model.encoders["default"].state_dict())
    head_before = copy.deepcopy(model.model.head.state_dict())
    train, val = _loaders()
    trainer, losses = _fit_with_history(model, tmp_path, train, val, epochs=8)
    logged = trainer.callback_metrics
    assert {"train_loss", "validation_loss", "validation_r_precision"} <= set(logged)
    assert losses[-1] < 0.7 * losses[0]
    for key, value in model.model.encoders["default"].state_dict().items():
        assert torch.equal(value, encoder_before[key]), f"frozen encoder {key} moved"
    assert any(not torch.equal(v, head_before[k]) for k, v in model.model.head.state_dict().items())


def test_trainable_encoder_is_trained(tmp_path):
    pl.seed_everything(0)
    model = TinyTrainable(trainable_encoder=True, cache=CacheConfig())
    before = copy.deepcopy(model.model.encoders["default"].state_dict())
    train, val = _loaders()
    simtune.fit(model, _trainer(tmp_path, epochs=2), train, val)
    after = model.model.encoders["default"].state_dict()
    assert not torch.equal(after["net.0.weight"], before["net.0.weight"])
    assert not torch.equal(after["net.1.running_mean"], before["net.1.running_mean"])


def test_loader_kind_must_match_loss_kind():
    model = TinyTrainable(pairs=False)
    pairs = PairsSimilarityDataLoader(PairImages(), batch_size=4)
    expected = "train_dataloader is a PairsSimilarityDataLoader.*GroupLoss.*GroupSimilarityDataLoader"
    with pytest.raises(TypeError, match=expected):
        simtune.fit(model, None, pairs)


def test_dataloaders_are_reusable_after_fit(tmp_path):
    model = TinyTrainable(cache=None, metrics=False)
    train, val = _loaders()
    simtune.fit(model, _trainer(tmp_path, epochs=1), train, val)
    assert train.feature_collate is pass_through and val.feature_collate is pass_through
    objects, targets = next(iter(train))
    assert isinstance(objects, list) and len(objects) == len(targets["groups"])


def test_pairwise_loss_trains_from_cache(tmp_path):
    pl.seed_everything(0)
    model = TinyTrainable(pairs=True, cache=CacheConfig(), metrics=False)
    train = PairsSimilarityDataLoader(PairImages(), batch_size=8, shuffle=True)
    val = PairsSimilarityDataLoader(PairImages(seed=5), batch_size=8)
    _, losses = _fit_with_history(model, tmp_path, train, val, epochs=6)
    assert losses[-1] < 0.7 * losses[0]


def test_bf16_mixed_precision_trains_with_finite_loss(tmp_path):
    pl.seed_everything(0)
    model = TinyTrainable(trainable_encoder=True, metrics=False)
    train, val = _loaders()
    trainer = _trainer(tmp_path, epochs=3, precision="bf16-mixed")
    simtune.fit(model, trainer, train, val)
    assert torch.isfinite(trainer.callback_metrics["train_loss"])
    assert torch.isfinite(trainer.callback_metrics["validation_loss"])


def test_default_trainer_is_finite_and_stops_early_on_validation_loss():
    trainer = default_trainer(has_validation=True)
    assert trainer.max_epochs is not None and trainer.max_epochs > 0
    assert trainer.early_stopping_callback.monitor == "validation_loss"
    assert trainer.checkpoint_callback.save_last
    assert default_trainer(has_validation=False).early_stopping_callback is None


def test_default_trainer_leaves_a_class_balanced_sampler_to_shard_itself(tmp_path, monkeypatch):
    """Lightning cannot inject a DistributedSampler into ClassBalancedBatchSampler (it shards itself)."""
    monkeypatch.chdir(tmp_path)  # the default trainer writes checkpoints under the working directory
    images = GroupImages()
    sampler = ClassBalancedBatchSampler(images.groups.tolist(), 3, 4, batches_per_epoch=1)
    train = GroupSimilarityDataLoader(images, batch_sampler=sampler)
    trainer = simtune.fit(TinyTrainable(cache=CacheConfig(), metrics=False), None, train)
    assert trainer._accelerator_connector.use_distributed_sampler is False
    assert default_trainer(has_validation=False)._accelerator_connector.use_distributed_sampler is True


def test_save_servable_round_trips(tmp_path):
    model = TinyTrainable()
    model.save_servable(tmp_path / "servable")
    loaded = simtune.models.SimilarityModel.load(tmp_path / "servable", trusted_classes=[TinyConvEncoder])
    images = GroupImages().images[:5]
    assert torch.allclose(loaded.encode(list(images), to_numpy=False), model.model.encode(list(images), to_numpy=False))


def test_fit_shows_no_deprecation_or_future_warnings(tmp_path, recwarn):
    import warnings

    warnings.simplefilter("always")
    simtune.fit(TinyTrainable(), _trainer(tmp_path, epochs=1), *_loaders())
    deprecations = [str(w.message) for w in recwarn if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert not any("LeafSpec" in message for message in deprecations), deprecations


def test_default_trainer_takes_its_hardware_from_the_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    trainer = default_trainer(has_validation=False, device="auto")
    assert trainer.accelerator.__class__.__name__ == "CPUAccelerator" and trainer.num_devices == 1
    assert trainer.precision == "32-true"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        default_trainer(has_validation=False, device="cuda")


def test_fit_takes_a_device_or_a_trainer_not_both(tmp_path):
    train, _ = _loaders()
    with pytest.raises(ValueError, match="not both"):
        simtune.fit(TinyTrainable(), _trainer(tmp_path), train, device="cpu")


class ScrambleAfterFirstEpoch(pl.Callback):
    """Collapses the head at the start of every epoch after the first (every embedding the same, so every
    triplet costs the whole margin): later epochs validate worse than the first."""

    def __init__(self):
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch >= 1:
            with torch.no_grad():
                for name, parameter in pl_module.model.head.named_parameters():
                    parameter.fill_(1.0 if name.endswith("bias") else 0.0)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.snapshots.append({k: v.clone() for k, v in pl_module.model.head.state_dict().items()})


def test_fit_leaves_the_best_epochs_weights_not_the_last(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from simtune.train import RestoreBestWeights

    torch.manual_seed(0)
    model = TinyTrainable(lr=1e-5)
    history = ScrambleAfterFirstEpoch()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="validation_loss")
    trainer = _trainer(tmp_path, epochs=3, callbacks=[history, checkpoint, RestoreBestWeights()])
    simtune.fit(model, trainer, *_loaders())
    assert len(history.snapshots) == 3 and checkpoint.best_model_path.endswith("epoch=0-step=3.ckpt")
    final = model.model.head.state_dict()
    assert all(torch.equal(final[k], history.snapshots[0][k]) for k in final)
    assert not all(torch.equal(final[k], history.snapshots[-1][k]) for k in final)


def test_default_trainer_restores_the_best_epoch():
    from simtune.train import RestoreBestWeights

    assert any(isinstance(c, RestoreBestWeights) for c in default_trainer(has_validation=True).callbacks)
    assert not any(isinstance(c, RestoreBestWeights) for c in default_trainer(has_validation=False).callbacks)
