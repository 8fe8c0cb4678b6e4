"""Every Pillow mode reads as the 8-bit RGB a viewer would show, or fails naming the mode."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from simtune.image_modes import to_rgb


def _mean(image: Image.Image) -> float:
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == image.size
    return float(np.asarray(rgb).mean())


@pytest.mark.parametrize("dtype, mode", [("<u2", "I;16"), (">u2", "I;16B"), ("<i4", "I")])
def test_sixteen_bit_grey_is_scaled_not_clipped(dtype, mode):
    image = Image.fromarray(np.array([[0, 32896, 65535]], dtype=dtype))
    assert image.mode == mode
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == [0, 128, 255]


def test_float_grey_in_unit_range_and_in_byte_range():
    assert np.asarray(to_rgb(Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))))[0, :, 1].tolist() == [
        0,
        128,
        255,
    ]
    assert np.asarray(to_rgb(Image.fromarray(np.array([[0.0, 100.0, 255.0]], dtype=np.float32))))[0, :, 1].tolist() == [
        0,
        100,
        255,
    ]


@pytest.mark.parametrize(
    "pixels, message",
    [
        (np.array([[-5.0, 3.0]], dtype=np.float32), "'F' holds pixel values from -5 to 3"),
        (np.array([[0.0, 1000.0]], dtype=np.float32), "'F' holds pixel values from 0 to 1000"),
        (np.array([[0.0, np.nan]], dtype=np.float32), "'F' .* NaN"),
        (np.array([[-1, 70000]], dtype=np.int32), "'I' holds pixel values from -1 to 70000"),
    ],
)
def test_values_with_no_8_bit_reading_are_refused_naming_the_mode(pixels, message):
    with pytest.raises(ValueError, match=message):
        to_rgb(Image.fromarray(pixels))


def test_transparent_pixels_become_white_whatever_colour_they_hide():
    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (0, 255))
    assert np.asarray(to_rgb(la))[0].tolist() == [[255, 255, 255], [0, 0, 0]]
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 200, 10, 10])
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    assert np.asarray(to_rgb(palette))[0].tolist() == [[255, 255, 255], [200, 10, 10]]


@pytest.mark.parametrize(
    "mode, colour", [("1", 1), ("L", 77), ("CMYK", (0, 0, 0, 0)), ("YCbCr", (255, 128, 128)), ("RGBA", (9, 8, 7, 255))]
)
def test_ordinary_modes_convert_as_pillow_does(mode, colour):
    image = Image.new(mode, (3, 2), colour)
    assert np.array_equal(np.asarray(to_rgb(image)), np.asarray(image.convert("RGB")))


def test_rgb_is_returned_as_is():
    image = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_rgb(image) is image


def _phone_photo(upright: Image.Image, orientation: int) -> Image.Image:
    """``upright`` stored as a camera would, turned, with the EXIF tag saying how to turn it back."""
    stored = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = upright.transpose(stored)
    photo.info["exif"] = exif.tobytes()
    return photo


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_honoured_as_a_browser_shows_the_photo(tmp_path, orientation, suffix):
    upright = Image.fromarray(np.kron(np.arange(6, dtype=np.uint8).reshape(2, 3) * 40, np.ones((16, 16), np.uint8)))
    upright = upright.convert("RGB")
    path = tmp_path / f"phone{suffix}"
    photo = _phone_photo(upright, orientation)
    photo.save(path, exif=photo.info["exif"], quality=100)
    with Image.open(path) as opened:
        assert opened.size != upright.size or orientation == 3
        shown = to_rgb(opened)
    assert shown.size == upright.size
    assert np.abs(np.asarray(shown, dtype=int) - np.asarray(upright, dtype=int)).max() <= 8


def test_an_image_without_orientation_is_not_copied():
    image = Image.new("RGB", (3, 2), (1, 2, 3))
    assert to_rgb(image) is image
