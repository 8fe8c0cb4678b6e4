import numpy as np
import onnxruntime
import pytest
import torch
from toy_encoders import ToyEncoder

from simtune.models import SimilarityModel
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.models.heads import LinearHead, SkipConnectionHead
from simtune.models.onnx_export import export_onnx


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
    with pytest.raises(ValueError, match="disagrees with the eager model"):
        export_onnx(model, tmp_path / "toy.onnx", image_size=16, atol=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_image_size_is_required_when_the_encoders_do_not_define_one(tmp_path):
    model = SimilarityModel(ToyEncoder(size=2), LinearHead(2))
    with pytest.raises(ValueError, match="pass image_size"):
        export_onnx(model, tmp_path / "toy.onnx")
