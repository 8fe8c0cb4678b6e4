"""Decode every image once up front, so an unreadable or truncated file is skipped and listed, not fatal mid-run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from simtune.atomic import staged_file
from simtune.image_modes import to_rgb


@dataclass(frozen=True)
class CheckedImage:
    """``error`` is None for a good image; ``cropped_to`` is where its bounding-box crop was written, if asked."""

    path: Path
    error: str | None = None
    cropped_to: Path | None = None


def check_image(path: Path, crop: tuple[int, int, int, int] | None = None, crop_to: Path | None = None) -> CheckedImage:
    """Fully decode ``path`` (PIL refuses truncated files); optionally write its ``crop`` box to ``crop_to``."""
    try:
        with Image.open(path) as image:
            image.load()
            rgb = to_rgb(image)  # a mode with no faithful RGB reading is skipped here, not mid-training
            if crop is None or crop_to is None:
                return CheckedImage(path)
            x1, y1, x2, y2 = crop
            box = (max(0, x1), max(0, y1), min(image.width, x2 + 1), min(image.height, y2 + 1))
            if box[0] >= box[2] or box[1] >= box[3]:
                return CheckedImage(path, f"bounding box {crop} lies outside the {image.width}x{image.height} image")
            with staged_file(crop_to, durable=False) as staging:  # a crop is cheap to redo
                rgb.crop(box).save(staging, format="JPEG", quality=95)
            return CheckedImage(path, cropped_to=crop_to)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return CheckedImage(path, f"{type(error).__name__}: {error}")


def check_images(
    jobs: list[tuple[Path, tuple[int, int, int, int] | None, Path | None]], workers: int = 2, progress: bool = True
) -> list[CheckedImage]:
    """``check_image`` over (path, crop box, crop destination) jobs, in order; PIL decodes outside the GIL."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda job: check_image(*job), jobs)
        return list(tqdm(results, total=len(jobs), desc="checking images", unit="img", disable=not progress))
