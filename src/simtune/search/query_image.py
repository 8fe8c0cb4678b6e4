"""Decoding a user's query image with limits, shared by the CLI and the HTTP API.

Checks happen in order of cost: byte size, format sniffing, pixel count from the header (before any
pixel is decoded, which is what stops a decompression bomb), then the full decode (catches truncation).
Full decodes are bounded: at most ``MAX_CONCURRENT_DECODES`` at a time per process (a large PNG costs
hundreds of MB while it decodes), and the result is shrunk to at most ``MAX_DECODED_SIDE`` pixels a side
(JPEGs decode at a reduced scale directly), since every model input is far smaller.
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from simtune.image_modes import to_rgb
from simtune.search.errors import ImageTooLargeError, InvalidImageError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
MAX_DECODED_SIDE = 1024
MAX_CONCURRENT_DECODES = 2
_DECODE_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)


def size_limit_message(name: str, size: int, max_bytes: int) -> str:
    """Sizes in bytes, so a file just over the limit never reads "10.0 MiB; the limit is 10.0 MiB"."""
    in_mib = f" ({max_bytes / 2**20:g} MiB)" if max_bytes >= 2**20 else ""
    return f"{name} is {size:,} bytes; the limit is {max_bytes:,} bytes{in_mib}"


def decode_query_image(
    data: bytes, name: str = "upload", max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """An RGB image from ``data``; ``InvalidImageError`` / ``ImageTooLargeError`` name ``name`` and the problem."""
    if len(data) > max_bytes:
        raise ImageTooLargeError(size_limit_message(name, len(data), max_bytes))
    if not data:
        raise InvalidImageError(f"{name} is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit applies below
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise InvalidImageError(
                f"{name} is not an image in a format Pillow can read (JPEG, PNG, WebP, ...)"
            ) from None
        except Image.DecompressionBombError as error:
            raise ImageTooLargeError(f"{name} has more pixels than the limit of {max_pixels:,} ({error})") from None
        except (OSError, SyntaxError, ValueError) as error:
            raise InvalidImageError(f"{name} is truncated or corrupt: {error}") from None
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{name} is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
            )
        with _DECODE_SLOTS:
            image.draft(None, (MAX_DECODED_SIDE, MAX_DECODED_SIDE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
            try:
                image.load()
            except (OSError, SyntaxError, ValueError) as error:
                raise InvalidImageError(f"{name} is truncated or corrupt: {error}") from None
            try:
                rgb = to_rgb(image)
            except ValueError as error:
                raise InvalidImageError(f"{name}: {error}") from None
            del image
            rgb.thumbnail((MAX_DECODED_SIDE, MAX_DECODED_SIDE), Image.Resampling.BILINEAR)
            return rgb


def load_query_image(
    path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Same checks for a file on disk; a missing file or a folder is an ``InvalidImageError`` too."""
    path = Path(path)
    if not path.is_file():
        raise InvalidImageError(f"{path} does not exist or is not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageTooLargeError(size_limit_message(str(path), size, max_bytes))
    return decode_query_image(path.read_bytes(), str(path), max_bytes, max_pixels)
