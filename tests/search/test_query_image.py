import io

import numpy as np
import pytest
from PIL import Image

from simtune.search import ImageTooLargeError, InvalidImageError
from simtune.search.query_image import decode_query_image, load_query_image


def _jpeg(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_a_valid_image_decodes_to_rgb():
    image = decode_query_image(_jpeg())
    assert image.mode == "RGB" and image.size == (64, 48)


def test_non_images_truncated_and_empty_uploads_are_invalid():
    with pytest.raises(InvalidImageError, match="not an image"):
        decode_query_image(b"%PDF-1.4 definitely not a photo")
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        decode_query_image(_jpeg((256, 256))[:600])
    with pytest.raises(InvalidImageError, match="empty"):
        decode_query_image(b"")


def test_byte_and_pixel_limits():
    with pytest.raises(ImageTooLargeError, match=r"^upload is \d+ bytes; the limit is 100 bytes$"):
        decode_query_image(_jpeg(), max_bytes=100)
    with pytest.raises(ImageTooLargeError, match="64x48 = 3,072 pixels; the limit is 1,000"):
        decode_query_image(_jpeg(), max_pixels=1000)


def test_load_query_image_checks_the_path(tmp_path):
    with pytest.raises(InvalidImageError, match="does not exist"):
        load_query_image(tmp_path / "nope.jpg")
    (tmp_path / "car.jpg").write_bytes(_jpeg())
    assert load_query_image(tmp_path / "car.jpg").size == (64, 48)


def _encoded(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format)
    return buffer.getvalue()


def test_a_sixteen_bit_grey_png_keeps_its_brightness():
    mid_grey = Image.fromarray(np.full((32, 32), 32896, dtype=np.uint16))
    decoded = decode_query_image(_encoded(mid_grey, "PNG"), "grey16.png")
    assert decoded.mode == "RGB"
    assert np.asarray(decoded).mean() == pytest.approx(128, abs=1)


def test_a_mode_with_no_rgb_reading_is_refused_naming_the_mode():
    hdr = Image.fromarray(np.array([[0.0, 4000.0]], dtype=np.float32))
    with pytest.raises(InvalidImageError, match=r"^hdr.tif: image mode 'F' holds pixel values from 0 to 4000"):
        decode_query_image(_encoded(hdr, "TIFF"), "hdr.tif")


def test_large_images_are_shrunk_while_decoding():
    wide = decode_query_image(_encoded(Image.new("RGB", (6000, 1500), (10, 200, 30)), "PNG"))
    assert wide.size == (1024, 256) and wide.getpixel((5, 5)) == (10, 200, 30)
    photo = decode_query_image(_encoded(Image.new("RGB", (4096, 3072), (90, 90, 200)), "JPEG"))
    assert max(photo.size) <= 1024
