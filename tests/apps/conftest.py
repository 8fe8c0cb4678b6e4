"""Tiny fabricated collections: random JPEGs named like cars in each layout the readers know, and drawn shapes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASS_NAMES = [
    "Audi TTS Coupe 2012",
    "Aston Martin Virage Coupe 2012",
    "Land Rover LR2 SUV 2012",
    "smart fortwo Convertible 2012",
    "BMW M3 Coupe 2012",
    "Volvo 240 Sedan 1993",
    "Ford GT Coupe 2006",
    "Geo Metro Convertible 1993",
]


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
    """8 classes x 3 images (the fewest the class split takes), all readable, in the stanford-cars-crop224 layout."""
    root = tmp_path / "cars"
    rows = []
    for class_id, name in enumerate(CLASS_NAMES, start=1):
        for i in range(3):
            filename = f"images/{class_id:03d}/img_{class_id}_{i}.jpg"
            write_image(root / filename, seed=class_id * 10 + i)
            rows.append((filename, class_id, name, "train" if i < 2 else "test"))
    write_labels_csv(root, rows)
    return root


SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220)}


def draw_shape(path: Path, shape: str, colour: tuple[int, int, int], seed: int, size: int = 96) -> Path:
    """A ``shape`` in ``colour`` at a random place and size on a noisy light background."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    background = rng.integers(180, 256, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    side = int(rng.integers(size // 3, size // 2 + 10))
    x, y = (int(v) for v in rng.integers(4, size - side - 4, 2))
    if shape == "circle":
        draw.ellipse((x, y, x + side, y + side), fill=colour)
    elif shape == "square":
        draw.rectangle((x, y, x + side, y + side), fill=colour)
    else:
        draw.polygon([(x + side // 2, y), (x, y + side), (x + side, y + side)], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def write_shapes_collection(root: Path, classes: int = 9, per_class: int = 10) -> Path:
    """One folder per class ("red circle", "blue square", ...), ``per_class`` drawn PNGs each: not cars."""
    kinds = [(shape, colour) for colour in COLOURS for shape in SHAPES][:classes]
    for index, (shape, colour) in enumerate(kinds):
        for i in range(per_class):
            draw_shape(root / f"{colour} {shape}" / f"{i:02d}.png", shape, COLOURS[colour], seed=index * 1000 + i)
    return root
