from PIL import Image
from tests.apps.conftest import write_image, write_truncated_image

from simtune.apps.images.data.image_check import check_image, check_images


def test_good_truncated_and_non_image_files(tmp_path):
    good = write_image(tmp_path / "good.jpg", 1)
    truncated = write_truncated_image(tmp_path / "truncated.jpg", 2)
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    results = check_images([(good, None, None), (truncated, None, None), (text, None, None)], workers=2, progress=False)
    assert [r.path for r in results] == [good, truncated, text]
    assert results[0].error is None
    assert "truncated" in results[1].error.lower()
    assert "UnidentifiedImageError" in results[2].error


def test_crop_writes_the_box_inclusive(tmp_path):
    source = write_image(tmp_path / "car.jpg", 3, size=(40, 30))
    result = check_image(source, (5, 4, 24, 13), tmp_path / "crops" / "car.jpg")
    assert result.error is None and result.cropped_to == tmp_path / "crops" / "car.jpg"
    assert Image.open(result.cropped_to).size == (20, 10)


def test_box_outside_the_image_is_an_error_not_a_crash(tmp_path):
    source = write_image(tmp_path / "car.jpg", 3, size=(40, 30))
    result = check_image(source, (50, 50, 60, 60), tmp_path / "crop.jpg")
    assert "outside the 40x30 image" in result.error


def test_an_image_mode_with_no_rgb_reading_is_listed_not_used(tmp_path):
    import numpy as np

    Image.fromarray(np.array([[0.0, 4000.0]], dtype=np.float32)).save(tmp_path / "hdr.tif")
    result = check_image(tmp_path / "hdr.tif")
    assert result.error is not None and "image mode 'F' holds pixel values from 0 to 4000" in result.error
