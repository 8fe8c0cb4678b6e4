"""``simtune images train``: a trainable head (see ``heads``) on frozen backbones, trained on the run's
training classes.

The saved model serves the last-conv head flip-averaged (``flip_average``: each image and its mirror through
the same weights, embeddings averaged); training and validation see the images alone.
The frozen backbones run once over every image (see ``features``); every epoch, evaluation and rerun
reads their cached outputs. After each epoch the head is scored on the validation classes (R-Precision,
leave-one-out); training stops once that has not improved for ``patience`` epochs, and the best epoch's
weights are kept (not retrained on the validation classes: the kept model is the one that was measured).
The unseen classes are never looked at here. Lightning checkpoints each epoch
(``<run>/checkpoints/last.ckpt``), so an interrupted run resumes where it stopped; a checkpoint that does
not read back whole (cut short, altered) sets the checkpoints aside, renamed, and training starts over.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
import zipfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

import simtune
from simtune.apps.images.data.dataset import TRAIN, VALIDATION, ImageDataset, ImageRecord
from simtune.apps.images.data.run_folder import Run
from simtune.apps.images.data.samples import MIRROR, ImageSamples
from simtune.apps.images.data.split import ClassSplit
from simtune.apps.images.run.epoch_history import SELECTION, EpochHistory
from simtune.apps.images.run.features import BackboneFeatures
from simtune.apps.images.run.processes import process_device, rank_zero_first
from simtune.apps.images.run.settings import TrainSettings, load_settings
from simtune.apps.images.run.snapshots import HeadSnapshots
from simtune.apps.images.run.trainable import ImagesTrainable, servable_model
from simtune.apps.images.run.validation import MONITOR, ValidationRetrieval, head_scorer
from simtune.atomic import write_json
from simtune.data import ClassBalancedBatchSampler, GroupSimilarityDataLoader
from simtune.devices import select_device, trainer_options
from simtune.models.encoders import Encoder


def is_trained(run: Run, settings: TrainSettings) -> bool:
    """The servable model exists and was trained with exactly these settings."""
    return (
        (run.model_dir / "config.json").is_file() and run.settings_file.is_file() and (load_settings(run) == settings)
    )


def batch_classes(groups: list[int], classes_per_batch: int, processes: int = 1) -> int:
    """``classes_per_batch``, capped so that each of ``processes`` DDP processes draws its own classes from the
    training classes that can be drawn (two or more samples each)."""
    usable = sum(1 for count in Counter(groups).values() if count >= 2)
    if usable < 2 * processes:
        needed = f"{2 * processes} such classes (2 per training process)" if processes > 1 else "2 such classes"
        raise ValueError(
            f"only {usable} of the {len(set(groups))} training classes have two or more images; training needs at "
            f"least {needed}, as each batch needs positives and negatives: add images, or try another --split-seed"
            + (", or fewer --devices" if processes > 1 else "")
        )
    return min(classes_per_batch, usable // processes)


def training_batches(groups: list[int], settings: TrainSettings, processes: int = 1) -> ClassBalancedBatchSampler:
    """P x K batches per process; an epoch draws each image about once, but never fewer than
    ``min_batches_per_epoch`` batches, so a small collection still gets enough steps between validations."""
    classes = batch_classes(groups, settings.classes_per_batch, processes)
    sampler = ClassBalancedBatchSampler(groups, classes, settings.samples_per_class, seed=settings.seed)
    if steps_per_epoch(sampler, processes) >= settings.min_batches_per_epoch:
        return sampler
    return ClassBalancedBatchSampler(
        groups,
        classes,
        settings.samples_per_class,
        batches_per_epoch=settings.min_batches_per_epoch,
        seed=settings.seed,
    )


def steps_per_epoch(sampler: ClassBalancedBatchSampler, processes: int) -> int:
    """The batches each of ``processes`` DDP processes draws per epoch: ``len(sampler)`` once DDP has started
    (the sampler reads the process group then; before, its length is the one-process count)."""
    return sampler.requested_batches or max(1, sampler.usable_samples // (sampler.batch_size * processes))


def run_features(
    run: Run | str | Path,
    encoders: dict[str, Encoder],
    dataset: ImageDataset,
    settings: TrainSettings,
    cache_dir: Path | None = None,
    device: str | torch.device = "auto",
) -> BackboneFeatures:
    """The run's cached backbone outputs for every image (``cache_dir``, by default ``RUN/cache``), encoded on
    first use, in every view training, evaluation and indexing read (mirror images too when serving
    flip-averaged). ``device``: where images are encoded (``auto|cpu|cuda|cuda:N``)."""
    views = settings.views + ((MIRROR,) if settings.flip_average and MIRROR not in settings.views else ())
    cache_dir = Path(cache_dir) if cache_dir else Run.of(run).cache_dir
    return BackboneFeatures(
        encoders, dataset.records, cache_dir, views, settings.workers, device, trained_views=settings.views
    ).prepare()


def keep_best_epoch(trainable: ImagesTrainable, checkpoint: ModelCheckpoint) -> tuple[int, float]:
    """Load the head weights of the best validation epoch (``checkpoint``'s best) into ``trainable``;
    returns (that epoch, its validation R-Precision)."""
    state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    prefix = "_model.head."
    trainable.model.head.load_state_dict(
        {k[len(prefix) :]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    )
    return int(state["epoch"]) + 1, float(checkpoint.best_model_score)


def check_validation(records: list[ImageRecord]) -> None:
    """Validation needs a class with two images (a query and something to find)."""
    if not any(count >= 2 for count in Counter(r.class_index for r in records).values()):
        raise ValueError(
            f"the validation classes hold {len(records)} readable images and none has two: nothing to validate on; "
            "add images, or try another --split-seed"
        )


def resumable_checkpoint(run: Run) -> Path | None:
    """``last.ckpt`` when every checkpoint of the run reads back whole (each zip member's CRC checked), else
    None; a damaged one sets the whole checkpoints folder aside (renamed ``checkpoints.damaged-<UTC time>``,
    not deleted) with the epoch snapshots it belongs to, and says so."""
    checkpoints = run.checkpoints_dir
    last = checkpoints / "last.ckpt"
    if not last.is_file():
        return None
    for path in sorted(checkpoints.glob("*.ckpt")):
        try:
            with zipfile.ZipFile(path) as archive:
                bad_member = archive.testzip()
            problem = f"member {bad_member} fails its checksum" if bad_member else None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
        if problem:
            aside = checkpoints.with_name(
                f"{checkpoints.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            )
            os.rename(checkpoints, aside)
            shutil.rmtree(run.snapshots_dir, ignore_errors=True)
            warnings.warn(
                f"{path} is damaged ({problem}): the checkpoints are set aside as {aside} and training starts over",
                stacklevel=2,
            )
            return None
    return last


def train_run(
    run: Run | str | Path,
    dataset: ImageDataset,
    split: ClassSplit,
    settings: TrainSettings,
    progress: bool = True,
    features: BackboneFeatures | None = None,
    device: str | torch.device = "auto",
    devices: int = 1,
    num_nodes: int = 1,
) -> Path:
    """Train (or resume, or skip when already trained with these settings); returns the servable model folder.

    ``device`` (``auto|cpu|cuda|cuda:N``) encodes the images and trains the head, mixed precision on a GPU;
    it is not a setting: a run trained on a GPU resumes on a CPU. ``devices`` processes per machine on
    ``num_nodes`` machines train with DDP (Lightning launches them; each batch's classes are shared out
    among them); the images are encoded before, by the first process, and only global rank 0 writes the
    model, history and snapshots.

    ``features``: backbone outputs already loaded for (a superset of) ``dataset``'s images, e.g. shared by
    several runs on the same collection; by default the run's own cache."""
    run = Run.of(run)
    with rank_zero_first():
        if is_trained(run, settings):
            return run.model_dir
        checkpoints = run.checkpoints_dir
        if run.settings_file.is_file() and load_settings(run) != settings:
            shutil.rmtree(checkpoints, ignore_errors=True)  # other settings: start over (the features stay valid)
            shutil.rmtree(run.snapshots_dir, ignore_errors=True)
        write_json(run.settings_file, asdict(settings))
    pl.seed_everything(settings.seed, verbose=False)
    class_map = {c: i for i, c in enumerate(split.train_classes)}
    train = ImageSamples(dataset.subset(TRAIN), views=settings.views, class_map=class_map)
    processes = devices * num_nodes
    sampler = training_batches(train.groups, settings, processes)
    train_loader = GroupSimilarityDataLoader(train, batch_sampler=sampler)
    steps = steps_per_epoch(sampler, processes)
    trainable = ImagesTrainable(settings, len(class_map), steps, run.cache_dir)
    encoders = dict(trainable.model.encoders.items())
    features = features or run_features(run, encoders, dataset, settings, device=process_device(select_device(device)))
    with rank_zero_first():
        features.write_split_cache("train", train, run.cache_dir)
    validation = dataset.subset(VALIDATION)
    check_validation(validation)
    score = head_scorer(features.backbone_outputs(validation), torch.tensor([r.class_index for r in validation]))
    del features
    history = EpochHistory()
    best = ModelCheckpoint(
        dirpath=checkpoints,
        filename="best",
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
        save_last=True,
        save_on_train_epoch_end=True,
    )
    trainer = pl.Trainer(
        max_epochs=settings.epochs,
        **trainer_options(device, devices, num_nodes),
        use_distributed_sampler=False,  # the class-balanced sampler shares each batch's classes out itself
        logger=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
        log_every_n_steps=steps,
        callbacks=[
            ValidationRetrieval(score),
            history,
            HeadSnapshots(run.snapshots_dir),
            EarlyStopping(MONITOR, mode="max", patience=settings.patience, check_on_train_epoch_end=True),
            best,
        ]
        + ([TQDMProgressBar()] if progress else []),
    )
    with rank_zero_first():
        last = resumable_checkpoint(run)
    with warnings.catch_warnings():
        # Validation runs in ValidationRetrieval, on cached features, not in Lightning's validation loop.
        warnings.filterwarnings("ignore", ".*`validation_step` but have no `val_dataloader`.*")
        simtune.fit(trainable, trainer, train_loader, ckpt_path=last)
    if not trainer.is_global_zero:
        return run.model_dir
    epoch, value = keep_best_epoch(trainable, best)
    stopped = len(history.history.get("train_loss", []))
    history.history[SELECTION] = {
        "monitor": MONITOR,
        "kept_epoch": epoch,
        "kept_value": value,
        "epochs_run": stopped,
        "max_epochs": settings.epochs,
        "patience": settings.patience,
        "reason": (
            f"the best {MONITOR} ({value:.4f}) over {len(validation)} images of "
            f"{len(split.validation_classes)} validation classes; "
            + (
                f"no better epoch in the {stopped - epoch} after it, so training stopped after epoch {stopped}"
                if stopped < settings.epochs
                else f"training ran all {settings.epochs} epochs"
            )
        ),
    }
    write_json(run.history_file, history.history)
    servable_model(trainable.model, settings).save(run.model_dir)
    return run.model_dir
