import pytest

from simtune.apps.images.run.backbones import build_backbone, build_backbones, encoder_name


def test_encoder_names_are_folder_safe():
    assert encoder_name("torchvision:resnet152") == "torchvision-resnet152"
    assert encoder_name("lite0") == "lite0"


@pytest.mark.parametrize("name", ["lite9", "resnet152", "torchvision:", "torchvision:not_a_model"])
def test_unknown_backbones_fail_clearly(name):
    with pytest.raises(ValueError, match="unknown"):
        build_backbone(name)


def test_backbones_must_be_distinct_and_present():
    with pytest.raises(ValueError, match="distinct"):
        build_backbones(["lite0", "lite0"])
    with pytest.raises(ValueError, match="at least one"):
        build_backbones([])


def test_hf_backbone_is_a_local_hugging_face_vision_model(tmp_path):
    import transformers

    from simtune.apps.images.run.backbones import build_backbones
    from simtune.models.encoders import HuggingFaceVisionEncoder

    folder = tmp_path / "tiny-dinov2"
    config = transformers.Dinov2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=8, image_size=32
    )
    transformers.Dinov2Model(config).save_pretrained(folder)
    transformers.BitImageProcessor(crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    encoders = build_backbones([f"hf:{folder}/"])
    assert list(encoders) == ["hf-tiny-dinov2"]
    encoder = encoders["hf-tiny-dinov2"]
    assert isinstance(encoder, HuggingFaceVisionEncoder) and encoder.image_size == 32 and not encoder.trainable
    with pytest.raises(ValueError, match=r"hf:<folder or Hugging Face id"):
        build_backbones(["hf:"])
    with pytest.raises(FileNotFoundError, match="never downloads"):
        build_backbones([f"hf:{tmp_path / 'absent'}"])
