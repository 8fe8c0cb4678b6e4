"""Tiny fabricated car collections: a few coloured JPEGs per class, in each layout the readers know."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASS_NAMES = ["Audi TTS Coupe 2012", "Aston Martin Virage Coupe 2012", "Land Rover LR2 SUV 2012", "smart fortwo Convertible 2012"]


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 30)) -> Path:
    """A small random RGB JPEG (distinct per seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")
    return path


def write_truncated_image(path: Path, seed: int) -> Path:
    write_image(path, seed)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_labels_csv(root: Path, rows: list[tuple[str, int, str, str]]) -> Path:
    """rows: (filename, 1-based class_id, class_name, original_split)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "class_id", "class_name", "original_split"])
        writer.writerows(rows)
    return root / "labels.csv"


@pytest.fixture
def labels_csv_root(tmp_path: Path) -> Path:
    """4 classes x 3 images, all readable, in the stanford-cars-crop224 layout."""
    root = tmp_path / "cars"
    rows = []
    for class_id, name in enumerate(CLASS_NAMES, start=1):
        for i in range(3):
            filename = f"images/{class_id:03d}/img_{class_id}_{i}.jpg"
            write_image(root / filename, seed=class_id * 10 + i)
            rows.append((filename, class_id, name, "train" if i < 2 else "test"))
    write_labels_csv(root, rows)
    return root
