"""Training: classes per batch, validation checks, and early stopping with the kept epoch on a scripted curve."""

import importlib
import json
from pathlib import Path

import pytest
from tests.apps.conftest import write_shapes_collection

from simtune.apps.images.data.dataset import ImageRecord, prepare_dataset
from simtune.apps.images.data.run_folder import Run
from simtune.apps.images.run.epoch_history import SELECTION
from simtune.apps.images.run.settings import TrainSettings
from simtune.apps.images.run.snapshots import load_snapshot
from simtune.apps.images.run.train import batch_classes, check_validation, train_run
from simtune.models import SimilarityModel

CURVE = [0.30, 0.55, 0.50, 0.52, 0.40, 0.70]  # best at epoch 2; patience 2 stops after epoch 4


@pytest.mark.slow
def test_training_stops_after_patience_and_keeps_the_best_validation_epoch(tmp_path: Path, monkeypatch):
    dataset, split = prepare_dataset(
        write_shapes_collection(tmp_path / "shapes", classes=8, per_class=4), tmp_path / "run", progress=False
    )

    def scripted(backbone_outputs, groups, prefix="validation"):
        assert len(backbone_outputs) == len(dataset.subset("validation"))  # only validation images are scored
        epochs = iter(CURVE)
        return lambda head: {"validation_r_precision": next(epochs)}

    monkeypatch.setattr("simtune.apps.images.run.train.head_scorer", scripted)
    encode_or_load = importlib.import_module("simtune.train.cache.encode_or_load")  # the module, not the function
    filled, fill = [], encode_or_load.fill_together

    def counted_fill(together, encoders, config, device, entries, **options):
        filled.append([entry.layout.name for entry in entries])
        return fill(together, encoders, config, device, entries, **options)

    monkeypatch.setattr(encode_or_load, "fill_together", counted_fill)
    settings = TrainSettings(epochs=len(CURVE), patience=2, classes_per_batch=2, samples_per_class=2, workers=0)
    model_dir = train_run(tmp_path / "run", dataset, split, settings, progress=False)

    # every image encoded once with its mirror (for flip-averaged serving), in one pass; training read its
    # rows from there
    assert filled == [["images_original", "images_mirror"]]

    history = json.loads(Run(tmp_path / "run").history_file.read_text())
    assert [value for _, value in history["validation_r_precision"]] == pytest.approx(CURVE[:4])
    assert len(history["train_loss"]) == 4 and not any(name.startswith("unseen") for name in history)
    selection = history[SELECTION]
    assert (selection["kept_epoch"], selection["epochs_run"]) == (2, 4) and selection["kept_value"] == pytest.approx(
        0.55
    )
    assert "stopped after epoch 4" in selection["reason"]
    kept = load_snapshot(tmp_path / "run" / "epochs", 2)
    last = load_snapshot(tmp_path / "run" / "epochs", 4)
    head = SimilarityModel.load(model_dir).head.state_dict()
    assert all((head[k] == kept[k]).all() for k in kept)
    assert any(not (head[k] == last[k]).all() for k in kept if kept[k].is_floating_point())


def test_classes_per_batch_is_capped_at_the_training_classes_that_can_be_drawn():
    assert batch_classes([0, 0, 1, 1, 2, 2, 3], 64) == 3  # class 3 has one image: never drawn
    assert batch_classes([0, 0, 1, 1, 2, 2], 2) == 2
    with pytest.raises(ValueError, match="only 1 of the 3 training classes have two or more images"):
        batch_classes([0, 0, 1, 2], 64)


def test_validation_classes_without_a_pair_of_images_are_refused():
    records = [ImageRecord(i, f"{i}.jpg", c, f"class {c}", None, "validation") for i, c in enumerate([3, 4])]
    with pytest.raises(ValueError, match="validation classes hold 2 readable images and none has two"):
        check_validation(records)
    check_validation(records + [ImageRecord(2, "2.jpg", 4, "class 4", None, "validation")])
