"""``simtune.fit``: check the data against the loss, wire the encoder cache, run a Lightning Trainer."""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader

from simtune.data import GroupSimilarityDataLoader, PairsSimilarityDataLoader
from simtune.devices import AUTO, trainer_options
from simtune.losses.base import GroupLoss
from simtune.train.cache.cached_loader import CachedCollate
from simtune.train.cache.config import CacheType
from simtune.train.cache.encoder_cache import EncoderCache
from simtune.train.indexed_loaders import IndexedCollate, IndexedItems, rebuild_dataloader, uses_own_batch_sampler
from simtune.train.restore_best import RestoreBestWeights
from simtune.train.trainable_model import TrainableModel
from simtune.train.trainer_checks import check_monitored_keys, check_trainer

DEFAULT_MAX_EPOCHS = 20
DEFAULT_PATIENCE = 5


def default_trainer(
    has_validation: bool,
    max_epochs: int = DEFAULT_MAX_EPOCHS,
    root_dir: str | Path | None = None,
    device: str | torch.device | None = AUTO,
    devices: int = 1,
    num_nodes: int = 1,
    **trainer_kwargs: Any,
) -> pl.Trainer:
    """Progress bar, finite epochs, a ``last.ckpt`` (trainable parts only) and, with validation data,
    the best checkpoint, early stopping on ``validation_loss`` and, when training ends, the best epoch's
    weights loaded back into the model (``RestoreBestWeights``): what ``fit`` leaves is the best epoch.

    ``device`` (``auto|cpu|cuda|cuda:N``), ``devices`` (processes per machine) and ``num_nodes``
    (machines) choose the hardware through :func:`simtune.devices.trainer_options`: mixed precision on a
    GPU, DDP with more than one process. ``trainer_kwargs`` (strategy, precision, ...) go to
    ``pl.Trainer`` over all of these.

    A train loader with its own batch sampler (``ClassBalancedBatchSampler``) shards itself under
    DDP: pass ``use_distributed_sampler=False`` (``fit`` does when it builds this trainer)."""
    monitor = "validation_loss" if has_validation else None
    callbacks: list[pl.Callback] = [ModelCheckpoint(monitor=monitor, save_last=True)]
    if has_validation:
        callbacks += [EarlyStopping(monitor="validation_loss", patience=DEFAULT_PATIENCE), RestoreBestWeights()]
    defaults = trainer_options(device, devices, num_nodes) | dict(
        max_epochs=max_epochs,
        callbacks=callbacks,
        enable_progress_bar=True,
        log_every_n_steps=1,
        default_root_dir=root_dir,
    )
    return pl.Trainer(**(defaults | trainer_kwargs))


def check_dataloader(trainable_model: TrainableModel, loader: DataLoader, name: str) -> None:
    """A group loss needs group samples and a pairwise loss needs pairs; say which to use otherwise."""
    group_loss = isinstance(trainable_model.loss, GroupLoss)
    expected = GroupSimilarityDataLoader if group_loss else PairsSimilarityDataLoader
    if not isinstance(loader, expected):
        loss = type(trainable_model.loss).__name__
        family = "GroupLoss" if group_loss else "PairwiseLoss"
        raise TypeError(
            f"{name} is a {type(loader).__name__}, but the loss {loss} is a {family}; "
            f"wrap the data in a {expected.__name__}"
        )


def fit(
    trainable_model: TrainableModel,
    trainer: pl.Trainer | None = None,
    train_dataloader: DataLoader | None = None,
    val_dataloader: DataLoader | None = None,
    ckpt_path: str | Path | None = None,
    *,
    device: str | torch.device | None = AUTO,
    devices: int = 1,
    num_nodes: int = 1,
) -> pl.Trainer:
    """Train ``trainable_model``; returns the trainer (``trainer.callback_metrics`` holds the last logs).

    With ``configure_caches()`` set and at least one frozen encoder, the frozen encoders run once over
    the train and validation data and training reads their cached embeddings. Lightning gets loaders
    rebuilt with the same samplers whose targets also carry each sample's dataset index; the
    dataloaders passed in are left as they were, ready for another fit or an evaluation.

    Without a ``trainer``, ``device``, ``devices`` and ``num_nodes`` pick the hardware of the default one
    (see ``default_trainer``); with one, they must be left alone (the trainer already chose).

    Under DDP a ``ClassBalancedBatchSampler`` shards itself, so the trainer needs
    ``use_distributed_sampler=False`` (the default trainer has it); validation then runs unsharded on
    every process and each sample is counted once.
    """
    check_trainer(trainer)
    if not isinstance(trainable_model, TrainableModel):
        raise TypeError(f"trainable_model must be a TrainableModel, got {type(trainable_model).__name__}")
    if train_dataloader is None:
        raise ValueError("fit() needs a train_dataloader")
    loaders = {"train": train_dataloader} | ({"val": val_dataloader} if val_dataloader is not None else {})
    for split, loader in loaders.items():
        check_dataloader(trainable_model, loader, f"{split}_dataloader")
    if trainer is not None and (device != AUTO or devices != 1 or num_nodes != 1):
        raise ValueError("fit(): pass device/devices/num_nodes or a trainer, not both (the trainer chose its hardware)")
    trainer = trainer or default_trainer(
        has_validation=val_dataloader is not None,
        device=device,
        devices=devices,
        num_nodes=num_nodes,
        use_distributed_sampler=not uses_own_batch_sampler(train_dataloader),
    )
    check_monitored_keys(trainable_model, trainer)

    model = trainable_model.model
    frozen = {name: enc for name, enc in model.encoders.items() if not enc.trainable}
    cache_config = trainable_model.configure_caches()
    use_cache = cache_config is not None and cache_config.cache_type != CacheType.NONE and bool(frozen)
    if use_cache:
        cache = EncoderCache(cache_config, frozen, {split: loader.dataset for split, loader in loaders.items()})
        trainable_collates = {n: e.get_collate_fn() for n, e in model.encoders.items() if e.trainable}
        fit_loaders = {
            split: rebuild_dataloader(
                loader,
                IndexedItems(loader.dataset, read_source=bool(trainable_collates)),
                CachedCollate(partial(cache.get, split), sorted(frozen), trainable_collates),
            )
            for split, loader in loaders.items()
        }
    else:
        cache = None
        fit_loaders = {
            split: rebuild_dataloader(
                loader,
                IndexedItems(loader.dataset, read_source=True),
                IndexedCollate(loader.collate_type(model.get_collate_fn())),
            )
            for split, loader in loaders.items()
        }
    trainable_model.encoder_cache = cache
    with warnings.catch_warnings():
        # A cache-backed loader reads memory; worker processes would only add overhead.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        # Frozen encoders are meant to stay in eval mode (BatchNorm statistics must not move).
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode at the start of training.*")
        # Lightning 2.6 builds torch pytree specs with LeafSpec(), which torch deprecated; not ours to change.
        warnings.filterwarnings(
            "ignore",
            r"`isinstance\(treespec, LeafSpec\)` is deprecated",
            FutureWarning,
            "lightning.pytorch.utilities._pytree",
        )
        trainer.fit(
            trainable_model, fit_loaders["train"], fit_loaders.get("val"), ckpt_path=ckpt_path, weights_only=True
        )
    return trainer
