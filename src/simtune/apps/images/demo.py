"""``simtune images demo``: every stage in one go (prepare, train, evaluate, index), so it composes the run
commands' steps with the service's indexing; a rerun reuses whatever the run folder already holds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from simtune.apps.images.data.preset import Preset
from simtune.apps.images.run.commands import (
    BACKBONE_OPTION,
    DATA_OPTION,
    EPOCHS_OPTION,
    PATIENCE_OPTION,
    device_option,
    evaluate_model,
    prepare_data,
    train_model,
    train_settings,
)
from simtune.folder_lock import locked_folder


@contextmanager
def _stage(name: str) -> Iterator[None]:
    typer.secho(f"== {name}", bold=True)
    start = time.perf_counter()
    yield
    typer.echo(f"   {name} took {time.perf_counter() - start:.0f}s")


def demo_command(
    preset: Preset,
    data: Path = DATA_OPTION,
    run: Path = typer.Option(Path("runs/images"), "--run", help="Run folder; a rerun reuses what it holds."),
    backbone: list[str] = BACKBONE_OPTION,
    epochs: int = EPOCHS_OPTION,
    patience: int = PATIENCE_OPTION,
    workers: int = typer.Option(2, min=0),
    device: str = device_option("auto", "images are encoded and the head trained"),
) -> None:
    """Prepare, train, evaluate and report in one go; a second run reuses every cache and finishes in minutes."""
    from simtune.apps.images.run.heads import supports_last_conv
    from simtune.apps.images.run.settings import TrainSettings
    from simtune.apps.images.service.indexing import serve_hint
    from simtune.devices import select_device

    select_device(device)  # absent hardware is refused before any work
    head = TrainSettings().head if supports_last_conv(list(backbone)) else "skip"
    settings = train_settings(backbone, head=head, epochs=epochs, patience=patience, workers=workers)
    with locked_folder(run):  # one writer of the run folder at a time
        with _stage("prepare"):
            dataset, split = prepare_data(data, run, 42, False, workers, preset)
        with _stage("train (encodes every image once, then trains the head from the cache)"):
            train_model(run, dataset, split, settings, device)
        with _stage("evaluate base vs tuned, report"):
            evaluate_model(run, 6, device=device, reuse=True)
        with _stage(f"index all {preset.noun} for search"):
            location, count = index_for_demo(run, dataset, device)
    typer.echo(f"{count} {dataset.noun} indexed in {location}\nserve it: {serve_hint(run, location, preset.name)}")


def index_for_demo(run: Path, dataset: Any, device: str = "auto") -> tuple[Any, int]:
    """Builds RUN/index unless it already holds every record for this very model (warm reruns)."""
    from simtune.apps.images.data.run_folder import Run
    from simtune.apps.images.service.indexing import IndexLocation, index_run, open_index

    location = IndexLocation.for_run(run)
    if location.index_dir.is_dir():
        try:
            with open_index(location, Run(run).model()) as index:
                # An index from before data folders were recorded serves no images: rebuild it.
                if index.count() == len(dataset.records) and index.schema.data_root is not None:
                    return location, len(dataset.records)
        except Exception as error:  # stale, another model, or unreadable: rebuild it
            typer.echo(f"rebuilding {location.index_dir}: {error}")
    return index_run(run, dataset, device=device)
