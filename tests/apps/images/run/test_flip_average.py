"""Flip averaging: the evaluated, encoded and served embeddings of a photo are one and the same."""

from pathlib import Path

import pytest
import torch

from simtune.apps.images.data.dataset import ImageRecord
from simtune.apps.images.run.evaluate import base_embeddings, head_embeddings
from simtune.apps.images.run.features import BackboneFeatures
from simtune.apps.images.run.settings import TrainSettings
from simtune.apps.images.run.trainable import ImagesTrainable, servable_model
from simtune.models import SimilarityModel
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.search.query_image import decode_query_image


@pytest.fixture(scope="module")
def car_photos(cars_data: Path) -> list[Path]:
    folders = sorted((cars_data / "images").iterdir())[::40][:4]
    return [sorted(folder.glob("*.jpg"))[1] for folder in folders]


def assert_same_embeddings(found: torch.Tensor, expected: torch.Tensor) -> None:
    """The same embeddings, up to the cache's rounding: its rows are float16, encoded in bfloat16 where the
    CPU computes it natively (the smallest cosine over 1,655 validation photos was 0.998, docs/cache.md)."""
    cosine = torch.nn.functional.cosine_similarity(found, expected)
    assert cosine.min() > 0.998, cosine


def test_the_default_serves_flip_averaged_last_conv_and_other_heads_embed_the_image_alone():
    settings = TrainSettings()
    assert settings.flip_average and settings.tuned_blocks == 2
    skip = TrainSettings(head="skip")
    assert not skip.flip_average and skip.tuned_blocks == 0
    with pytest.raises(ValueError, match="flip_average needs the 'last-conv' head"):
        TrainSettings(head="skip", flip_average=True)


def test_evaluate_encode_and_the_service_give_one_flip_averaged_embedding(tmp_path, car_photos):
    trainable = ImagesTrainable(TrainSettings(), num_train_classes=4, steps_per_epoch=1, cache_dir=tmp_path)
    with torch.no_grad():
        for parameter in trainable.model.head.parameters():  # a trained head, not the pretrained one
            parameter.add_(0.02 * torch.randn_like(parameter))
    servable_model(trainable.model, TrainSettings()).save(tmp_path / "model")
    model = SimilarityModel.load(tmp_path / "model").eval()
    assert model.encoders["lite0"].mirror and model.head.views == 2

    records = [ImageRecord(i, str(p), i, f"class {i}", None, "unseen") for i, p in enumerate(car_photos)]
    features = BackboneFeatures(dict(model.encoders.items()), records, tmp_path / "cache").prepare()
    outputs = features.backbone_outputs(records, mirrored=True)
    evaluated = head_embeddings(model, outputs)  # evaluate's and indexing's path: cached views + head
    encoded = torch.as_tensor(model.encode([str(p) for p in car_photos], to_numpy=True))
    served = torch.cat(
        [  # the service's path: an uploaded file, decoded and encoded alone
            torch.as_tensor(model.encode([decode_query_image(p.read_bytes(), p.name)], batch_size=1, to_numpy=True))
            for p in car_photos
        ]
    )
    assert_same_embeddings(encoded, evaluated)
    assert_same_embeddings(served, evaluated)

    single = trainable.model.eval()  # the same weights without the mirror: a different embedding
    with torch.no_grad():
        alone = single.head(outputs[:, : outputs.shape[1] // 2].float())
    assert (alone - evaluated).norm(dim=1).min() > 3 * (encoded - evaluated).norm(dim=1).max()
    frozen = EfficientNetLiteEncoder("lite0").eval()  # the base row: the frozen network, images alone
    with torch.no_grad():
        expected = frozen(frozen.get_collate_fn()([str(p) for p in car_photos]))
    assert_same_embeddings(base_embeddings(model, outputs), expected)
