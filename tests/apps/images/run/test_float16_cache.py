"""The images app's float16 cache trains and evaluates as a float32 one would, on real car photos."""

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from simtune.apps.images.data.dataset import UNSEEN, VALIDATION, prepare_dataset
from simtune.apps.images.data.samples import ImageSamples
from simtune.apps.images.run import features as features_module
from simtune.apps.images.run import trainable as trainable_module
from simtune.apps.images.run.evaluate import evaluate_run, head_embeddings
from simtune.apps.images.run.settings import TrainSettings
from simtune.apps.images.run.train import run_features, train_run
from simtune.apps.images.run.trainable import training_encoders
from simtune.models import SimilarityModel

CLASSES, PER_CLASS = 8, 10
# R-Precision over a few dozen images moves in steps of about 0.01; rounding the rows to float16 may tip a
# near tie or two, not more (on the development machine the scores were equal and the cosine 0.9999998)
SCORE_TOLERANCE = 0.02
MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def small_cars(cars_data: Path, tmp_path_factory) -> Path:
    """8 car classes x 10 photos, one folder per class."""
    root = tmp_path_factory.mktemp("cars")
    for folder in sorted((cars_data / "images").iterdir())[:: 196 // CLASSES][:CLASSES]:
        for photo in sorted(folder.glob("*.jpg"))[:PER_CLASS]:
            (root / f"class {folder.name}").mkdir(exist_ok=True)
            shutil.copy(photo, root / f"class {folder.name}" / photo.name)
    return root


def trained(root: Path, run: Path, settings: TrainSettings) -> dict:
    """Train and evaluate a run; its validation and unseen scores and its unseen images' embeddings."""
    dataset, split = prepare_dataset(root, run, progress=False)
    features = run_features(run, training_encoders(settings), dataset, settings, device="cpu")
    model_dir = train_run(run, dataset, split, settings, progress=False, features=features, device="cpu")
    metrics = evaluate_run(run, features=features)
    model = SimilarityModel.load(model_dir).eval()
    unseen = dataset.subset(UNSEEN)
    return {
        "validation": metrics["selection"]["kept_value"],
        "unseen": metrics["tuned"]["r_precision"],
        "embeddings": head_embeddings(model, features.backbone_outputs(unseen)),
        "dtype": features.split_outputs(ImageSamples(unseen))["lite0"].dtype,
        "validation_images": len(dataset.subset(VALIDATION)),
    }


@pytest.mark.slow
def test_a_float16_cache_trains_and_evaluates_within_tolerance_of_float32(small_cars, tmp_path, monkeypatch):
    settings = TrainSettings(head="skip", epochs=3, patience=3, samples_per_class=5, min_batches_per_epoch=6, workers=0)
    half = trained(small_cars, tmp_path / "float16", settings)

    default = features_module.cache_config

    def float32_cache(cache_dir, workers, precision=features_module.TRAINED_PRECISION):
        return replace(default(cache_dir, workers, precision), dtype="float32")

    monkeypatch.setattr(features_module, "cache_config", float32_cache)
    monkeypatch.setattr(trainable_module, "cache_config", float32_cache)
    single = trained(small_cars, tmp_path / "float32", settings)

    assert (half["dtype"], single["dtype"]) == (torch.float16, torch.float32)
    assert half["validation_images"] == 2 * PER_CLASS
    assert abs(half["validation"] - single["validation"]) <= SCORE_TOLERANCE, (half["validation"], single["validation"])
    assert abs(half["unseen"] - single["unseen"]) <= SCORE_TOLERANCE, (half["unseen"], single["unseen"])
    cosine = torch.nn.functional.cosine_similarity(half["embeddings"], single["embeddings"])
    assert cosine.min() > MIN_COSINE, cosine.min()
