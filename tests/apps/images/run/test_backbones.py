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
