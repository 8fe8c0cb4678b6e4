import pytest
import torch
from PIL import Image

from simtune.models.encoders import ImageCollate

LITE = ImageCollate(224, mean=(127.0,) * 3, std=(128.0,) * 3)


def test_paths_and_pil_images_give_the_same_batch_in_minus_one_to_one(car_images):
    from_paths = LITE(car_images[:3])
    from_pil = LITE([Image.open(path) for path in car_images[:3]])
    assert from_paths.shape == (3, 3, 224, 224) and from_paths.dtype == torch.float32
    assert torch.equal(from_paths, from_pil)
    assert from_paths.min() >= -1 and from_paths.max() <= 1
    assert from_paths.min() < -0.5 and from_paths.max() > 0.5  # really uses the range


def test_other_sizes_and_modes_are_resized_to_rgb_squares(tmp_path):
    gray = Image.new("L", (500, 300), color=255)
    gray.save(tmp_path / "big.jpg")
    batch = LITE([gray, tmp_path / "big.jpg", str(tmp_path / "big.jpg")])
    assert batch.shape == (3, 3, 224, 224)
    assert torch.allclose(batch, torch.full_like(batch, (255 - 127) / 128), atol=2 / 128)


def test_bad_inputs_name_the_input(tmp_path):
    with pytest.raises(TypeError, match="image 1: expected a PIL image or a file path, got int"):
        LITE([Image.new("RGB", (4, 4)), 7])
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        LITE([tmp_path / "broken.jpg"])
    with pytest.raises(ValueError, match="missing.jpg"):
        LITE([tmp_path / "missing.jpg"])
    with pytest.raises(ValueError, match="empty"):
        LITE([])


def test_collate_survives_pickling_for_dataloader_workers(car_images):
    import pickle

    assert torch.equal(pickle.loads(pickle.dumps(LITE))(car_images[:2]), LITE(car_images[:2]))


def test_sixteen_bit_and_unreadable_modes_from_files(tmp_path):
    import numpy as np

    collate = ImageCollate(8, mean=[0, 0, 0], std=[1, 1, 1])
    Image.fromarray(np.full((16, 16), 32896, dtype=np.uint16)).save(tmp_path / "grey16.png")
    assert collate.load(tmp_path / "grey16.png").mean() == pytest.approx(128, abs=1)
    Image.fromarray(np.array([[0.0, 4000.0]], dtype=np.float32)).save(tmp_path / "hdr.tif")
    with pytest.raises(ValueError, match=r"image 0 \(.*hdr.tif\): image mode 'F' holds pixel values from 0 to 4000"):
        collate([tmp_path / "hdr.tif"])


def test_transformed_tensors_are_refused_saying_the_encoder_preprocesses():
    transformed = torch.zeros(3, 224, 224)  # what a torchvision ToTensor + Normalize dataset yields
    with pytest.raises(
        TypeError,
        match=r"image 0: .*already transformed Tensor of shape \(3, 224, 224\).*do their own "
        r"preprocessing.*drop the transforms.*get_collate_fn\(\) stacks them",
    ):
        LITE([transformed])


def test_a_phone_photo_turned_by_its_exif_tag_encodes_as_the_upright_photo(car_images, tmp_path):
    with Image.open(car_images[0]) as opened:
        upright = opened.convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    upright.save(tmp_path / "upright.jpg", quality=95)
    rotated, straight = LITE([tmp_path / "phone.jpg", tmp_path / "upright.jpg"])
    assert (rotated - straight).abs().mean() < 0.02
