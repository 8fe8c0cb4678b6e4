"""train / evaluate / demo commands. Heavy packages are imported when a command runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from simtune.apps.images.preset import Preset

_BACKBONE_HELP = "lite0|lite1|lite2|torchvision:NAME; repeat to concatenate several."


@contextmanager
def _clean_errors(preset: Preset) -> Iterator[None]:
    """Bad input (a missing folder, an unknown layout, a run made for other data) is one line, not a traceback;
    the commands it suggests are this app's."""
    try:
        yield
    except (ValueError, FileNotFoundError) as error:
        message = str(error).replace("simtune images ", f"simtune {preset.name} ")
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def _settings(backbone: list[str], **fields: Any):
    from simtune.apps.images.run.train import TrainSettings

    return TrainSettings(backbones=list(backbone), **fields)


def _prepare(data: Path, run: Path, split_seed: int, crop: bool, workers: int, preset: Preset):
    from simtune.apps.images.data.dataset import TRAIN, UNSEEN, VALIDATION, prepare_dataset

    dataset, split = prepare_dataset(data, run, seed=split_seed, crop=crop, workers=workers, preset=preset)
    typer.echo(
        f"{dataset.layout} layout: {len(dataset.records)} images, {len(split.train_classes)} training classes "
        f"({len(dataset.subset(TRAIN))} images), {len(split.validation_classes)} validation classes "
        f"({len(dataset.subset(VALIDATION))} images), {len(split.unseen_classes)} unseen classes "
        f"({len(dataset.subset(UNSEEN))} images)"
    )
    for label, items in (
        ("unreadable images skipped", list(dataset.skipped)),
        ("listed files missing", dataset.missing),
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


def _train(run: Path, dataset, split, settings) -> None:
    import json

    from simtune.apps.images.run.train import HISTORY_FILE, SELECTION, train_run

    model_dir = train_run(run, dataset, split, settings)
    selection = json.loads((run / HISTORY_FILE).read_text()).get(SELECTION)
    if selection:
        typer.echo(f"kept epoch {selection['kept_epoch']}: {selection['reason']}")
    typer.echo(f"servable model: {model_dir}")


def _evaluate(run: Path, grid_queries: int, unseen_curve: bool = False) -> None:
    from simtune.apps.images.run.evaluate import HEADLINE, REPORT_FILE, evaluate_run

    metrics = evaluate_run(run, grid_queries=grid_queries, unseen_curve=unseen_curve)
    for name in HEADLINE:
        typer.echo(f"{name:>15}: base {metrics['base'][name]:.4f} -> tuned {metrics['tuned'][name]:.4f}")
    typer.echo(f"report: {run / REPORT_FILE}")


@contextmanager
def _stage(name: str) -> Iterator[None]:
    typer.secho(f"== {name}", bold=True)
    start = time.perf_counter()
    yield
    typer.echo(f"   {name} took {time.perf_counter() - start:.0f}s")


def add_run_commands(app: typer.Typer, preset: Preset) -> None:
    """``train``, ``evaluate`` and ``demo`` on ``app``, reading collections the way ``preset`` says."""
    layouts = ", ".join([r.layout for r in preset.readers] + ["labels.csv", "one folder per class"])
    data_option = typer.Option(..., "--data", help=f"Folder of labelled {preset.noun} photos: {layouts}.")
    run_option = typer.Option(
        ..., "--run", help="Run folder (created): split, caches, model, metrics and report go here."
    )
    backbone_option = typer.Option(["lite0"], "--backbone", help=_BACKBONE_HELP)
    epochs_option = typer.Option(
        10, min=1, help="Most epochs; training stops earlier once validation R-Precision stalls."
    )
    patience_option = typer.Option(3, min=1, help="Epochs without a better validation R-Precision before stopping.")

    @app.command("train")
    def train_command(
        data: Path = data_option,
        run: Path = run_option,
        backbone: list[str] = backbone_option,
        head: str = typer.Option(
            "last-conv",
            help="last-conv (fine-tune EfficientNet-Lite's final convolution; one lite backbone) | skip | linear | mlp "
            "(on pooled features). Output L2-normalised.",
        ),
        tuned_blocks: int | None = typer.Option(
            None,
            min=0,
            show_default=False,
            help="last-conv only: also tune the backbone's last N blocks, cached below them [default: 2; 0 for other heads].",
        ),
        loss: str = typer.Option("multi-similarity", help="multi-similarity | triplet | proxy-anchor."),
        epochs: int = epochs_option,
        patience: int = patience_option,
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
        mirror: bool = typer.Option(
            False, help="Also train on horizontally mirrored images (encodes every image twice)."
        ),
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
    ) -> None:
        """Train a head on frozen backbones over the training classes, stopping on the validation classes."""
        with _clean_errors(preset):
            settings = _settings(
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
            dataset, split = _prepare(data, run, split_seed, crop, workers, preset)
            _train(run, dataset, split, settings)

    @app.command("evaluate")
    def evaluate_command(
        run: Path = run_option,
        grid_queries: int = typer.Option(6, min=1, help="Queries shown in the retrieval grids."),
        unseen_curve: bool = typer.Option(
            False,
            help="Also score each epoch's weights on the unseen classes for the report's curves "
            "(one pass of the head over the unseen images per epoch).",
        ),
    ) -> None:
        """Base vs tuned on the unseen classes: metrics.json, figures and a self-contained report.html."""
        with _clean_errors(preset):
            _evaluate(run, grid_queries, unseen_curve)

    @app.command("demo")
    def demo_command(
        data: Path = data_option,
        run: Path = typer.Option(Path("runs") / preset.name, "--run", help="Run folder; a rerun reuses what it holds."),
        backbone: list[str] = backbone_option,
        epochs: int = epochs_option,
        patience: int = patience_option,
        workers: int = typer.Option(2, min=0),
    ) -> None:
        """Prepare, train, evaluate and report in one go; a second run reuses every cache and finishes in minutes."""
        from simtune.apps.images.run.train import TrainSettings, supports_last_conv
        from simtune.apps.images.service.indexing import serve_hint

        defaults = TrainSettings()
        head = defaults.head if supports_last_conv(list(backbone)) else "skip"
        with _clean_errors(preset):
            settings = _settings(backbone, head=head, epochs=epochs, patience=patience, workers=workers)
            with _stage("prepare"):
                dataset, split = _prepare(data, run, 42, False, workers, preset)
            with _stage("train (encodes every image once, then trains the head from the cache)"):
                _train(run, dataset, split, settings)
            with _stage("evaluate base vs tuned, report"):
                _evaluate(run, 6)
            with _stage(f"index all {preset.noun} for search"):
                location, count = index_for_demo(run, dataset)
            typer.echo(
                f"{count} {dataset.noun} indexed in {location}\nserve it: {serve_hint(run, location, preset.name)}"
            )


def index_for_demo(run: Path, dataset: Any) -> tuple[Any, int]:
    """Builds RUN/index unless it already holds every record for this very model (warm reruns)."""
    from simtune.apps.images.service.indexing import IndexLocation, index_run, load_run_model, open_index

    location = IndexLocation.for_run(run)
    if location.index_dir.is_dir():
        try:
            with open_index(location, load_run_model(run)) as index:
                # An index from before data folders were recorded serves no images: rebuild it.
                if index.count() == len(dataset.records) and index.schema.data_root is not None:
                    return location, len(dataset.records)
        except Exception as error:  # stale, another model, or unreadable: rebuild it
            typer.echo(f"rebuilding {location.index_dir}: {error}")
    return index_run(run, dataset)
