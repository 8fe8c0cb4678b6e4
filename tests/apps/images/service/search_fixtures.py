"""Shared by the search/serve/browser tests: a tiny embedder, real car photos indexed with it, a live server.

The fixtures reach the test modules through conftest.py; helpers are imported from here.
"""

from __future__ import annotations

import csv
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from simtune.apps.cars.preset import CARS, car_metadata
from simtune.apps.images.data.dataset import ImageRecord
from simtune.apps.images.service.indexing import IndexLocation, build_index, open_index

IMAGES_PER_CLASS = 6
CLASS_IDS = (1, 14, 50, 120)


class ThumbnailEmbedder:
    """An 8x8 RGB thumbnail as a 192-d vector: cheap, deterministic, and distinct per photo."""

    embedding_size = 192

    def __init__(self, name: str = "thumbnail-v1") -> None:
        self.name = name

    def fingerprint(self) -> str:
        return self.name

    def encode(
        self, objects: Sequence[Any], batch_size: int = 32, to_numpy: bool = True, progress: bool = False
    ) -> np.ndarray:
        rows = []
        for obj in objects:
            image = obj if isinstance(obj, Image.Image) else Image.open(obj)
            rows.append(np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32).reshape(-1) - 127.5)
        return np.stack(rows)


def car_records(cars_data: Path) -> list[ImageRecord]:
    """A few real photos from each of ``CLASS_IDS`` of the shared cars set (``cars_data``)."""
    with (cars_data / "labels.csv").open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if int(row["class_id"]) in CLASS_IDS]
    rows = [
        row for class_id in CLASS_IDS for row in [r for r in rows if int(r["class_id"]) == class_id][:IMAGES_PER_CLASS]
    ]
    records = []
    for row in rows:
        records.append(
            ImageRecord(
                id=len(records),
                path=str(cars_data / row["filename"]),
                class_index=int(row["class_id"]) - 1,
                class_name=row["class_name"],
                original_split=row["original_split"],
                subset="unseen",
                metadata=car_metadata(row["class_name"]),
            )
        )
    return records


@pytest.fixture(scope="module")
def indexed_run(tmp_path_factory: pytest.TempPathFactory, cars_data: Path) -> tuple[Path, list[ImageRecord]]:
    """A run folder whose RUN/index holds ``car_records()`` embedded by ``ThumbnailEmbedder``."""
    run = tmp_path_factory.mktemp("run")
    records = car_records(cars_data)
    build_index(run, records, model=ThumbnailEmbedder(), progress=False, metadata_fields=CARS.fields)
    return run, records


def serve_in_thread(app: Any) -> Iterator[str]:
    """Runs ``app`` under a real uvicorn on a free 127.0.0.1 port; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def live_server(indexed_run: tuple[Path, list[ImageRecord]]) -> Iterator[str]:
    from simtune.apps.images.service.serve import create_app

    run, _ = indexed_run
    model = ThumbnailEmbedder()
    with open_index(IndexLocation.for_run(run), model) as index:
        yield from serve_in_thread(create_app(index, model, title=CARS.title, noun=CARS.noun))
