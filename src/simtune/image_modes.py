"""Every Pillow image mode to upright 8-bit RGB, or a ``ValueError`` naming the mode: the one conversion that
search, serving, indexing, encoding and training share.

Upright: a phone stores a photo as the sensor saw it and says in its EXIF ``Orientation`` tag how to turn
it; browsers and viewers honour the tag, so the image a person sees (and would search with) is the turned
one, and so is the one embedded here.

``Image.convert("RGB")`` alone clips 16-bit and 32-bit greyscale at 255 (a 16-bit photo turns white)
and keeps whatever colour hides under transparent pixels, so those modes are converted here first.
"""

from __future__ import annotations

import numpy as np
from PIL import ExifTags, Image, ImageOps

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("RGBA", "RGBa", "LA", "PA")
# Modes whose convert("RGB") is a faithful colour conversion in Pillow.
_DIRECT = ("RGB", "RGBX", "L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV")
BACKGROUND = (255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as mode ``RGB``, turned upright as its EXIF orientation says: 16-bit greyscale scaled by
    1/257, float greyscale in [0, 1] scaled by 255 (in [0, 255] kept), transparent pixels composited onto
    white. ``ValueError`` for what has no faithful 8-bit reading (e.g. negative or out-of-range integers,
    NaN, unknown modes)."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in _SIXTEEN_BIT or mode == "I":
        return _scaled_grey(np.asarray(image).astype(np.float32), mode, 65535, 255 / 65535)
    if mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        if not np.isfinite(pixels).all():
            raise ValueError("image mode 'F' (32-bit float) holds NaN or infinite pixels")
        top = pixels.max(initial=0.0)
        return _scaled_grey(pixels, mode, 255, 255.0 if top <= 1.0 else 1.0)
    if mode in _ALPHA or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in _DIRECT:
        return image if mode == "RGB" else image.convert("RGB")
    raise ValueError(
        f"image mode {mode!r} has no supported conversion to RGB; save the image as 8-bit RGB or greyscale"
    )


def _scaled_grey(pixels: np.ndarray, mode: str, top: int, scale: float) -> Image.Image:
    """Greyscale ``pixels`` in 0..``top`` times ``scale`` as 8-bit RGB; other ranges are refused, not clipped."""
    low, high = (pixels.min(), pixels.max()) if pixels.size else (0, 0)
    if low < 0 or high > top:
        raise ValueError(
            f"image mode {mode!r} holds pixel values from {low:g} to {high:g}; only 0 to {top} can be read as greyscale"
        )
    grey = np.clip(np.rint(pixels * np.float32(scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")
