import numpy as np
import onnxruntime
import pytest
import torch
from toy_encoders import ToyEncoder

from simtune.models import EncoderHead, OnnxExportError, SimilarityModel
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.models.heads import (
    EfficientNetLiteTopHead,
    EmptyHead,
    GatedHead,
    LinearHead,
    SequentialHead,
    SkipConnectionHead,
    StackedProjectionHead,
    WideningHead,
)
from simtune.models.onnx_export import CHECK_BATCHES, TRACE_BATCH, export_onnx
from simtune.models.registry import BUILTINS, resolve_class

# Every built-in head over a 1280-d input (= 4 positions of 320 channels for the EfficientNet-Lite top).
BUILTIN_HEADS = {
    "EmptyHead": lambda: EmptyHead(1280, normalize=True),
    "EfficientNetLiteTopHead": lambda: EfficientNetLiteTopHead(
        1280, pooling="gem", residual=True, normalize=True, pretrained=False
    ),
    "LinearHead": lambda: LinearHead(1280, output_size=8),
    "SkipConnectionHead": lambda: SkipConnectionHead(1280),
    "GatedHead": lambda: GatedHead(1280),
    "WideningHead": lambda: WideningHead(1280, expansion_factor=0.5, activation="gelu"),
    "StackedProjectionHead": lambda: StackedProjectionHead(1280, output_sizes=[16, 8]),
    "SequentialHead": lambda: SequentialHead(
        1280, layers=[{"type": "linear", "size": 8}, {"type": "batch_norm"}, {"type": "tanh"}]
    ),
}


def _onnx_embeddings(path, inputs):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(["embeddings"], {name: x.numpy() for name, x in inputs.items()})
    return output


def test_the_list_covers_every_builtin_head():
    heads = {name for name in BUILTINS if issubclass(resolve_class({"builtin": name}, object, "test"), EncoderHead)}
    assert heads == set(BUILTIN_HEADS)


@pytest.mark.parametrize("name", BUILTIN_HEADS)
def test_every_builtin_head_exports_with_a_dynamic_batch(name, tmp_path):
    torch.manual_seed(0)
    model = SimilarityModel(ToyEncoder(size=1280), BUILTIN_HEADS[name]()).eval()
    with torch.no_grad():
        for parameter in model.head.parameters():  # away from the init (e.g. all-equal gates)
            parameter.add_(0.1 * torch.randn_like(parameter))
    assert export_onnx(model, tmp_path / "head.onnx", image_size=8) <= 1e-4
    for batch in {1, 4, 7} - {TRACE_BATCH}:
        images = {"default": torch.randn(batch, 3, 8, 8)}
        with torch.no_grad():
            expected = model(images).numpy()
        np.testing.assert_allclose(_onnx_embeddings(tmp_path / "head.onnx", images), expected, atol=1e-4, rtol=0)


class BatchBakingHead(LinearHead):
    """Reshapes by ``len(x)``: the tracer records the example's batch size as a constant."""

    def transform(self, embeddings):
        return self.fc(embeddings.reshape(len(embeddings), -1))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the baked-in batch is the point
def test_a_graph_with_a_baked_in_batch_size_fails_the_check_and_leaves_no_file(tmp_path):
    assert TRACE_BATCH not in CHECK_BATCHES and len(set(CHECK_BATCHES)) == 2
    model = SimilarityModel(ToyEncoder(size=4), BatchBakingHead(4))
    with pytest.raises(OnnxExportError, match=rf"fails in onnxruntime at batch size {CHECK_BATCHES[0]}") as failed:
        export_onnx(model, tmp_path / "baked.onnx", image_size=8)
    assert "\n" not in str(failed.value) and str(tmp_path / "baked.onnx") in str(failed.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_default_demo_model_saved_exported_and_run_in_onnxruntime_matches_eager(car_images, tmp_path):
    """The demo's model: the EfficientNet-Lite top (last two blocks, GeM, residual, L2) over the frozen
    network's block inputs, each image and its mirror embedded and averaged."""
    torch.manual_seed(0)
    encoder = EfficientNetLiteEncoder("lite0", output="blocks", tuned_blocks=2, mirror=True)
    head = EfficientNetLiteTopHead(
        encoder.embedding_size, pooling="gem", residual=True, normalize=True, tuned_blocks=2, views=2
    )
    with torch.no_grad():  # as if tuned: the residual branch and GeM power away from their init
        head.residual.gates.add_(1.0)
        head.gem_power.add_(0.5)
    SimilarityModel(encoder, head).save(tmp_path / "model")
    model = SimilarityModel.load(tmp_path / "model")
    assert export_onnx(model, tmp_path / "model.onnx") <= 1e-4
    for images in (car_images[:1], car_images[:5]):
        batch = model.get_collate_fn()(images)
        np.testing.assert_allclose(
            _onnx_embeddings(tmp_path / "model.onnx", batch), model.encode(images), atol=1e-4, rtol=0
        )


@pytest.mark.slow
def test_lite0_model_exported_to_onnx_agrees_on_real_images(car_images, tmp_path):
    encoder = EfficientNetLiteEncoder("lite0")
    model = SimilarityModel(encoder, SkipConnectionHead(encoder.embedding_size, normalize=True)).eval()
    max_abs_diff = export_onnx(model, tmp_path / "model.onnx")
    assert max_abs_diff <= 1e-4
    images = model.get_collate_fn()(car_images[:3])["default"]
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (onnx_embeddings,) = session.run(["embeddings"], {"default": images.numpy()})
    np.testing.assert_allclose(onnx_embeddings, model.encode(car_images[:3]), atol=1e-4, rtol=0)


def test_several_encoders_become_named_inputs_with_a_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    model = SimilarityModel({"b": ToyEncoder(size=2), "a": ToyEncoder(size=3)}, LinearHead(5, output_size=4))
    assert export_onnx(model, tmp_path / "toy.onnx", image_size=16) <= 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "toy.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["a", "b"]
    inputs = {name: torch.randn(5, 3, 16, 16) for name in ("a", "b")}
    (output,) = session.run(["embeddings"], {name: x.numpy() for name, x in inputs.items()})
    with torch.no_grad():
        np.testing.assert_allclose(output, model.eval()(inputs).numpy(), atol=1e-5)


def test_disagreement_raises_and_leaves_no_file(tmp_path):
    model = SimilarityModel(ToyEncoder(size=2), LinearHead(2))
    with pytest.raises(OnnxExportError, match="disagrees with the eager model"):
        export_onnx(model, tmp_path / "toy.onnx", image_size=16, atol=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_image_size_is_required_when_the_encoders_do_not_define_one(tmp_path):
    model = SimilarityModel(ToyEncoder(size=2), LinearHead(2))
    with pytest.raises(OnnxExportError, match="pass image_size"):
        export_onnx(model, tmp_path / "toy.onnx")
