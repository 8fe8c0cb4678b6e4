import io

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
    with pytest.raises(ImageTooLargeError, match="limit is 0.0 MiB"):
        decode_query_image(_jpeg(), max_bytes=100)
    with pytest.raises(ImageTooLargeError, match="64x48 = 3,072 pixels; the limit is 1,000"):
        decode_query_image(_jpeg(), max_pixels=1000)


def test_load_query_image_checks_the_path(tmp_path):
    with pytest.raises(InvalidImageError, match="does not exist"):
        load_query_image(tmp_path / "nope.jpg")
    (tmp_path / "car.jpg").write_bytes(_jpeg())
    assert load_query_image(tmp_path / "car.jpg").size == (64, 48)
