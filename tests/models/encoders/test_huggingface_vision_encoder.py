"""Hugging Face vision backbones through tiny randomly initialised models written by ``save_pretrained``:
shapes, the image tower of a two-tower checkpoint, save/load without pickle, the cache, ONNX."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simtune.models import SimilarityModel
from simtune.models.encoders import HuggingFaceVisionEncoder
from simtune.models.heads import LinearHead
from simtune.train import CacheConfig, encode_or_load

IMAGE_SIZE, HIDDEN = 32, 16
TINY = dict(hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=8)
MEAN, STD = [0.48, 0.45, 0.40], [0.27, 0.26, 0.28]


def _save(folder: Path, model_type: str) -> Path:
    """A random model of ``model_type`` and a ViT image processor (mean/std above, IMAGE_SIZE square)."""
    import transformers

    torch.manual_seed(0)
    vision = dict(TINY, image_size=IMAGE_SIZE)
    if model_type == "vit":
        model = transformers.ViTModel(transformers.ViTConfig(**vision))
    elif model_type == "dinov2":
        model = transformers.Dinov2Model(transformers.Dinov2Config(**vision))
    elif model_type == "clip":
        text = dict(hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=50)
        model = transformers.CLIPModel(
            transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)
        )
    else:
        text = dict(hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=50)
        model = transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=vision))
    model.save_pretrained(folder)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    transformers.ViTImageProcessor(size=size, image_mean=MEAN, image_std=STD).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["vit", "dinov2", "clip", "siglip"])
def tiny_model(request, tmp_path_factory) -> tuple[str, Path]:
    return request.param, _save(tmp_path_factory.mktemp(request.param), request.param)


def _images(count: int) -> list[Image.Image]:
    generator = np.random.default_rng(0)
    return [Image.fromarray(generator.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(count)]


def _embed(encoder, images) -> torch.Tensor:
    with torch.inference_mode():
        return encoder.eval()(encoder.get_collate_fn()(images))


def test_embeds_images_with_the_checkpoints_preprocessing(tiny_model):
    model_type, folder = tiny_model
    encoder = HuggingFaceVisionEncoder(folder)
    assert encoder.embedding_size == HIDDEN and not encoder.trainable
    assert (
        encoder.image_size == IMAGE_SIZE and encoder.mean == pytest.approx(MEAN) and encoder.std == pytest.approx(STD)
    )
    if model_type in ("clip", "siglip"):  # only the image tower of a two-tower checkpoint is loaded
        assert "vision" in encoder.network.config.model_type and not hasattr(encoder.network, "text_model")
    batch = encoder.get_collate_fn()(_images(3))
    assert batch.shape == (3, 3, IMAGE_SIZE, IMAGE_SIZE)
    out = _embed(encoder, _images(3))
    assert out.shape == (3, HIDDEN) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])


def test_a_saved_model_loads_without_the_checkpoint_folder_or_pickle(tiny_model, tmp_path):
    _, folder = tiny_model
    model = SimilarityModel(HuggingFaceVisionEncoder(folder), LinearHead(HIDDEN, 8))
    saved = tmp_path / "model"
    model.save(saved)
    assert not list(saved.rglob("*.pt")) and not list(saved.rglob("*.pkl")) and not list(saved.rglob("*.bin"))
    loaded = SimilarityModel.load(saved)
    images = _images(4)
    collate = model.get_collate_fn()
    with torch.inference_mode():
        before, after = model.eval()(collate(images)), loaded.eval()(loaded.get_collate_fn()(images))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    config = json.loads(next(saved.rglob("config.json")).read_text())
    assert json.dumps(config)  # plain JSON throughout


def test_the_cache_serves_the_second_encode(tmp_path):
    folder = _save(tmp_path / "vit", "vit")
    paths = []
    for index, image in enumerate(_images(5)):
        paths.append(tmp_path / f"{index}.png")
        image.save(paths[-1])
    config = CacheConfig(cache_type="cpu", save_dir=tmp_path / "cache", batch_size=2, num_workers=0)
    first = encode_or_load(HuggingFaceVisionEncoder(folder), paths, config, device="cpu", progress=False)
    reloaded = HuggingFaceVisionEncoder(folder)
    reloaded.forward = None  # a second encode would fail: it must read the cache
    second = encode_or_load(reloaded, paths, config, device="cpu", progress=False)
    assert first.features().shape == (5, HIDDEN)
    assert torch.equal(first.features(), second.features())
    # Other preprocessing is another cache entry, not a stale hit.
    other = HuggingFaceVisionEncoder(folder, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    assert not torch.equal(
        encode_or_load(other, paths, config, device="cpu", progress=False).features(), first.features()
    )


def test_onnx_export_computes_what_the_eager_model_computes(tmp_path):
    from simtune.models.onnx_export import export_onnx

    model = SimilarityModel(HuggingFaceVisionEncoder(_save(tmp_path / "dinov2", "dinov2")), LinearHead(HIDDEN, 8))
    assert export_onnx(model, tmp_path / "model.onnx", image_size=IMAGE_SIZE) <= 1e-4


def test_nothing_is_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="simtune never downloads"):
        HuggingFaceVisionEncoder("nobody/not-a-cached-model")
    with pytest.raises(FileNotFoundError, match="no model there"):
        HuggingFaceVisionEncoder(tmp_path / "missing")


def test_a_checkpoint_without_an_image_processor_needs_mean_and_std(tmp_path):
    import transformers

    transformers.ViTModel(transformers.ViTConfig(**TINY, image_size=IMAGE_SIZE)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="pass mean= and std="):
        HuggingFaceVisionEncoder(tmp_path)
    encoder = HuggingFaceVisionEncoder(tmp_path, mean=MEAN, std=STD)
    assert encoder.image_size == IMAGE_SIZE
