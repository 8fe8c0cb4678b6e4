"""train / evaluate commands, and the steps the demo strings together. Heavy packages are imported when a
command runs.

Each command takes the app's preset first; ``simtune.apps.images.cli`` binds it (see ``bind_preset``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simtune.apps.images.data.preset import Preset
from simtune.folder_lock import locked_folder

RUN_OPTION = typer.Option(
    Path("runs/images"), "--run", help="Run folder (created): split, caches, model, metrics and report go here."
)
DATA_OPTION = typer.Option(..., "--data", help="Folder of labelled {noun} photos: {layouts}.")
BACKBONE_OPTION = typer.Option(
    ["lite0"], "--backbone", help="lite0|lite1|lite2|torchvision:NAME|hf:FOLDER_OR_ID; repeat to concatenate several."
)


def device_option(default: str, where: str) -> Any:
    """The ``--device`` option of every command that encodes images: ``where`` says what runs there."""
    return typer.Option(
        default,
        "--device",
        help=f"auto|cpu|cuda|cuda:N: where {where} (auto: the first GPU if any, in mixed precision; else the CPU).",
    )


EPOCHS_OPTION = typer.Option(10, min=1, help="Most epochs; training stops earlier once validation R-Precision stalls.")
PATIENCE_OPTION = typer.Option(3, min=1, help="Epochs without a better validation R-Precision before stopping.")


def train_settings(backbone: list[str], **fields: Any):
    from simtune.apps.images.run.settings import TrainSettings

    return TrainSettings(backbones=list(backbone), **fields)


def prepare_data(data: Path, run: Path, split_seed: int, crop: bool, workers: int, preset: Preset):
    from simtune.apps.images.data.dataset import TRAIN, UNSEEN, VALIDATION, prepare_dataset

    dataset, split = prepare_dataset(data, run, seed=split_seed, crop=crop, workers=workers, preset=preset)
    typer.echo(
        f"{dataset.layout} layout: {len(dataset.records)} images, {len(split.train_classes)} training classes "
        f"({len(dataset.subset(TRAIN))} images), {len(split.validation_classes)} validation classes "
        f"({len(dataset.subset(VALIDATION))} images), {len(split.unseen_classes)} unseen classes "
        f"({len(dataset.subset(UNSEEN))} images)"
    )
    duplicates = [f"{copy} = {kept}" for copy, kept in dataset.duplicates.items()]
    for label, items in (
        ("unreadable images skipped", list(dataset.skipped)),
        ("listed files missing", dataset.missing),
        ("duplicates dropped (listed twice, or byte-identical to a kept image), kept once", duplicates),
        (
            "images dropped: byte-identical copies labelled with different classes",
            [f"{path} is {conflict}" for path, conflict in dataset.label_conflicts.items()],
        ),
        ("folders of images nested one level deeper than the layout reads, not read", dataset.unread_folders),
    ):
        if items:
            typer.secho(f"{len(items)} {label}, e.g. " + ", ".join(items[:3]), fg=typer.colors.YELLOW)
    for subset in (VALIDATION, UNSEEN):
        singles = dataset.single_image_classes(subset)
        if singles:
            typer.secho(
                f"{len(singles)} {subset} classes have one image: gallery only, never queries", fg=typer.colors.YELLOW
            )
    return dataset, split


def train_model(
    run: Path, dataset, split, settings, device: str = "auto", devices: int = 1, num_nodes: int = 1
) -> None:
    import json

    from simtune.apps.images.data.run_folder import Run
    from simtune.apps.images.run.epoch_history import SELECTION
    from simtune.apps.images.run.train import train_run
    from simtune.folder_lock import global_rank_is_zero

    model_dir = train_run(run, dataset, split, settings, device=device, devices=devices, num_nodes=num_nodes)
    if not global_rank_is_zero():  # DDP's other processes: rank 0 writes and reports the model
        return
    selection = json.loads(Run(run).history_file.read_text()).get(SELECTION)
    if selection:
        typer.echo(f"kept epoch {selection['kept_epoch']}: {selection['reason']}")
    typer.echo(f"servable model: {model_dir}")


def evaluate_model(
    run: Path, grid_queries: int, unseen_curve: bool = False, device: str = "auto", reuse: bool = False
) -> None:
    """Evaluate and print the headline metrics; ``reuse``: show ``metrics.json`` instead when it is current (the
    same model, data set and split, unedited), as a rerun of the demo does."""
    from simtune.apps.images.data.run_folder import Run
    from simtune.apps.images.run.evaluate import HEADLINE, current_metrics, evaluate_run

    metrics = current_metrics(run) if reuse else None
    if metrics is not None:
        typer.echo(f"{Run(run).metrics_file} is up to date (same model, data set and split): not evaluated again")
    else:
        metrics = evaluate_run(run, grid_queries=grid_queries, unseen_curve=unseen_curve, device=device)
    for name in HEADLINE:
        typer.echo(f"{name:>15}: base {metrics['base'][name]:.4f} -> tuned {metrics['tuned'][name]:.4f}")
    typer.echo(f"report: {Run(run).report_file}")


def train_command(
    preset: Preset,
    data: Path = DATA_OPTION,
    run: Path = RUN_OPTION,
    backbone: list[str] = BACKBONE_OPTION,
    head: str = typer.Option(
        "last-conv",
        help="last-conv (fine-tune EfficientNet-Lite's final convolution; one lite backbone) | skip | linear | mlp "
        "(on pooled features). Output L2-normalised.",
    ),
    tuned_blocks: int | None = typer.Option(
        None,
        min=0,
        show_default=False,
        help="last-conv only: also tune the backbone's last N blocks, cached below them "
        "[default: 2; 0 for other heads].",
    ),
    loss: str = typer.Option("multi-similarity", help="multi-similarity | triplet | proxy-anchor."),
    epochs: int = EPOCHS_OPTION,
    patience: int = PATIENCE_OPTION,
    learning_rate: float | None = typer.Option(None, min=0.0, help="Peak learning rate [default: the head's]."),
    classes_per_batch: int = typer.Option(
        64, min=2, help="Classes per batch (at most the training classes there are)."
    ),
    samples_per_class: int = typer.Option(8, min=2),
    min_batches_per_epoch: int = typer.Option(
        12,
        min=0,
        help="Fewest batches per epoch (an epoch otherwise draws each image about once); small collections need it.",
    ),
    mirror: bool = typer.Option(False, help="Also train on horizontally mirrored images (encodes every image twice)."),
    flip_average: bool | None = typer.Option(
        None,
        show_default=False,
        help="last-conv only: evaluate and serve the average of each image's and its mirror's embeddings "
        "[default: on; off for other heads].",
    ),
    seed: int = typer.Option(0, help="Training seed (batches, initialisation)."),
    split_seed: int = typer.Option(42, help="Seed of the class split; 42 is the tutorial's split."),
    crop: bool = typer.Option(False, help="Crop to the bounding boxes (layouts that have them)."),
    workers: int = typer.Option(2, min=0, help="Processes decoding images while the encoder runs."),
    device: str = device_option("auto", "images are encoded and the head trained"),
    devices: int = typer.Option(
        1,
        "--devices",
        help="Training processes on this machine (DDP through Lightning): GPUs with a GPU --device, else CPU "
        "processes (gloo).",
    ),
    num_nodes: int = typer.Option(
        1, "--num-nodes", help="Machines training together, each running this command (set NODE_RANK, MASTER_ADDR)."
    ),
) -> None:
    """Train a head on frozen backbones over the training classes, stopping on the validation classes."""
    from simtune.apps.images.run.processes import join_torchrun_group, rank_zero_first
    from simtune.devices import select_device, trainer_options

    trainer_options(device, devices, num_nodes)  # absent hardware is refused before any work
    settings = train_settings(
        backbone,
        head=head,
        tuned_blocks=tuned_blocks,
        loss=loss,
        epochs=epochs,
        patience=patience,
        learning_rate=learning_rate,
        classes_per_batch=classes_per_batch,
        samples_per_class=samples_per_class,
        min_batches_per_epoch=min_batches_per_epoch,
        mirror=mirror,
        flip_average=flip_average,
        seed=seed,
        workers=workers,
    )
    with locked_folder(run):  # one writer of the run folder at a time (with its other ranks, if any)
        join_torchrun_group(select_device(device))
        with rank_zero_first():
            dataset, split = prepare_data(data, run, split_seed, crop, workers, preset)
        train_model(run, dataset, split, settings, device, devices, num_nodes)


def evaluate_command(
    preset: Preset,
    run: Path = RUN_OPTION,
    grid_queries: int = typer.Option(6, min=1, help="Queries shown in the retrieval grids."),
    unseen_curve: bool = typer.Option(
        False,
        help="Also score each epoch's weights on the unseen classes for the report's curves "
        "(one pass of the head over the unseen images per epoch).",
    ),
    device: str = device_option("auto", "images the run's cache lacks are encoded"),
) -> None:
    """Base vs tuned on the unseen classes: metrics.json, figures and a self-contained report.html."""
    from simtune.devices import select_device

    select_device(device)  # absent hardware is refused before any work
    if not run.is_dir():
        raise FileNotFoundError(f"{run} not found: train first (`simtune images train --data PATH --run {run}`)")
    with locked_folder(run, create=False):
        evaluate_model(run, grid_queries, unseen_curve, device)
