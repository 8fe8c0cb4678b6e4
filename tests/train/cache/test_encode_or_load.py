import logging
import os
import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from train_fakes import GroupImages, TinyConvEncoder, TinyTrainable

import simtune
from simtune.data import GroupSimilarityDataLoader, SimilarityGroupSample
from simtune.models import SimilarityModel
from simtune.models.encoders import Encoder, ImageCollate
from simtune.models.heads import LinearHead
from simtune.train import CacheConfig, encode_or_load, encode_or_load_together


class TinyImageEncoder(Encoder):
    """Decodes image files (PIL) in its collate, as real image encoders do; counts what it encodes."""

    def __init__(self, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.seed = seed
        self.items_encoded = 0
        self.requires_grad_(False)

    @property
    def trainable(self) -> bool:
        return False

    @property
    def embedding_size(self) -> int:
        return 4

    def forward(self, batch):
        self.items_encoded += len(batch)
        return self.net(batch)

    def get_config(self):
        return {"seed": self.seed}

    def get_collate_fn(self):
        return ImageCollate(16, (127.5,) * 3, (64.0,) * 3)


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for index in range(22):
        path = tmp_path / "images" / f"{index:02d}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_a_miss_encodes_and_saves_a_hit_encodes_nothing(tmp_path, image_files):
    samples = [SimilarityGroupSample(path, index % 3) for index, path in enumerate(image_files)]
    first_encoder = TinyImageEncoder()
    first = encode_or_load(first_encoder, samples, tmp_path / "cache", device="cpu", progress=False)
    assert first_encoder.items_encoded == len(samples)
    assert first.kind == "group" and first.features().shape == (len(samples), 4)
    assert first.targets["groups"].tolist() == [index % 3 for index in range(len(samples))]

    second_encoder = TinyImageEncoder()
    second = encode_or_load(second_encoder, samples, tmp_path / "cache", device="cpu", progress=False)
    assert second_encoder.items_encoded == 0
    assert torch.equal(first.features(), second.features())


def test_entries_are_found_by_fingerprint_whatever_their_name(tmp_path, image_files):
    encode_or_load(TinyImageEncoder(), image_files, tmp_path, name="gallery", device="cpu", progress=False)
    again = TinyImageEncoder()
    cached = encode_or_load(again, image_files, tmp_path, name="index", device="cpu", progress=False)
    assert again.items_encoded == 0 and cached.kind == "object" and cached.targets == {}


def test_changed_encoder_weights_invalidate_the_entry(tmp_path, image_files, caplog):
    encode_or_load(TinyImageEncoder(), image_files, tmp_path, device="cpu", progress=False)
    changed = TinyImageEncoder()
    with torch.no_grad():
        changed.net[0].bias += 0.5
    with caplog.at_level(logging.WARNING, logger="simtune"):
        encode_or_load(changed, image_files, tmp_path, device="cpu", progress=False)
    assert changed.items_encoded == len(image_files)
    assert any("encoder 'default' weights changed" in r.getMessage() for r in caplog.records)
    assert len(list(tmp_path.glob("features-*"))) == 1  # the stale version was replaced


def test_a_rewritten_image_file_invalidates_the_entry(tmp_path, image_files, caplog):
    first = encode_or_load(TinyImageEncoder(), image_files, tmp_path, device="cpu", progress=False)
    Image.new("RGB", (24, 20), (255, 0, 0)).save(image_files[5])
    os.utime(image_files[5], ns=(1, 1))  # a different mtime even on coarse file-system clocks
    encoder = TinyImageEncoder()
    with caplog.at_level(logging.WARNING, logger="simtune"):
        second = encode_or_load(encoder, image_files, tmp_path, device="cpu", progress=False)
    assert encoder.items_encoded == len(image_files)
    assert any("dataset keys changed" in r.getMessage() for r in caplog.records)
    assert not torch.equal(first.features()[5], second.features()[5])
    assert torch.equal(first.features()[6], second.features()[6])


def test_changed_texts_invalidate_the_entry(tmp_path):
    """Texts are keyed by their content, so an edit that keeps the length is still seen."""

    class Lengths(TinyConvEncoder):
        def get_collate_fn(self):
            return lambda texts: torch.tensor([[len(t)] * 192 for t in texts], dtype=torch.float32).view(-1, 3, 8, 8)

    encode_or_load(Lengths(), ["a cat", "a dog"], tmp_path, device="cpu", progress=False)
    encoder = Lengths()
    encode_or_load(encoder, ["a cat", "a cow"], tmp_path, device="cpu", progress=False)
    assert encoder.items_encoded == 2


def test_parallel_decoding_gives_the_same_features_as_serial(image_files):
    serial = encode_or_load(
        TinyImageEncoder(), image_files, CacheConfig(batch_size=4, num_workers=0), device="cpu", progress=False
    )
    parallel = encode_or_load(
        TinyImageEncoder(), image_files, CacheConfig(batch_size=4, num_workers=2), device="cpu", progress=False
    )
    assert torch.equal(serial.features(), parallel.features())


def test_workers_are_chosen_automatically_by_default():
    config = CacheConfig()
    cpus = len(os.sched_getaffinity(0))
    assert config.num_workers is None
    assert config.workers_for(num_batches=100) == min(4, cpus)
    assert config.workers_for(num_batches=1) == 0  # nothing to overlap
    assert CacheConfig(num_workers=3).workers_for(num_batches=1) == 3


def test_fit_and_encode_or_load_share_entries(tmp_path, quiet_trainer):
    """What fit cached for training is what evaluation reads: one entry, encoded once."""
    config = CacheConfig(save_dir=tmp_path / "cache")
    train = GroupSimilarityDataLoader(GroupImages(seed=0), batch_size=12, shuffle=True)
    trainable = TinyTrainable(cache=config, metrics=False)
    simtune.fit(trainable, quiet_trainer(epochs=1), train)
    encoder = TinyConvEncoder()
    cached = encode_or_load({"default": encoder}, GroupImages(seed=0), config, name="evaluation", device="cpu")
    assert encoder.items_encoded == 0
    assert torch.equal(cached.features(), trainable.encoder_cache.get("train").features())


def test_a_similarity_model_gives_its_encoders_and_the_head_applies_to_features(tmp_path):
    model = SimilarityModel({"b": TinyConvEncoder(size=3, seed=1), "a": TinyConvEncoder(size=5)}, LinearHead(8, 2))
    dataset = GroupImages()
    cached = encode_or_load(model, dataset, tmp_path, device="cpu", progress=False)
    batch = torch.stack([dataset[i].obj for i in range(len(dataset))])
    with torch.inference_mode():
        expected = model.eval()({"a": batch, "b": batch})
        assert torch.allclose(model.head(cached.features()), expected, atol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="encoders must be an Encoder"):
        encode_or_load(nn.Linear(2, 2), [])
    with pytest.raises(ValueError, match="cache name 'a/b'"):
        encode_or_load(TinyConvEncoder(), GroupImages(), name="a/b")
    with pytest.raises(ValueError, match="dataset is empty"):
        encode_or_load(TinyConvEncoder(), [], device="cpu")


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.M | re.S)


@pytest.mark.slow
def test_the_cache_documentation_example_runs(tmp_path, capsys):
    blocks = python_blocks(Path(__file__).resolve().parents[3] / "docs" / "cache.md")
    assert blocks
    script = tmp_path / "cache_page.py"  # the page's blocks build on each other, as a reader runs them
    script.write_text("\n\n".join(blocks))
    runpy.run_path(str(script))
    assert "torch.Size([12, 1280]) [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]" in capsys.readouterr().out


def test_together_fills_each_data_sets_own_entry_in_one_pass_and_refuses_unaligned_data_sets(tmp_path, image_files):
    plain = [SimilarityGroupSample(path, index % 3) for index, path in enumerate(image_files)]
    relabelled = [SimilarityGroupSample(path, index % 2) for index, path in enumerate(image_files)]
    together = list(zip(plain, relabelled))
    encoder = TinyImageEncoder()
    cached = encode_or_load_together(
        encoder, {"a": plain, "b": relabelled}, together, tmp_path, device="cpu", progress=False
    )
    assert encoder.items_encoded == 2 * len(image_files)
    for name, samples in (("a", plain), ("b", relabelled)):
        reader = TinyImageEncoder()
        alone = encode_or_load(reader, samples, tmp_path, name=name, device="cpu", progress=False)
        assert reader.items_encoded == 0
        assert torch.equal(alone.features(), cached[name].features())  # the same entry, read back
        assert alone.targets["groups"].tolist() == [s.group for s in samples]
    with pytest.raises(ValueError, match="as long as"):
        encode_or_load_together(encoder, {"a": plain, "b": relabelled[:-1]}, together, tmp_path)


class DtypeRecordingEncoder(TinyImageEncoder):
    """Records the dtype each forward pass computes in (bfloat16 under autocast)."""

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def forward(self, batch):
        output = super().forward(batch)
        self.dtypes.append(output.dtype)
        return output


def test_data_sets_encoded_together_each_keep_their_own_precision(tmp_path, image_files):
    plain = [SimilarityGroupSample(path, 0) for path in image_files]
    relabelled = [SimilarityGroupSample(path, 1) for path in image_files]
    together = list(zip(plain, relabelled))
    encoder = DtypeRecordingEncoder()
    config = CacheConfig(save_dir=tmp_path, batch_size=4, num_workers=0)
    precisions = {"b": "bfloat16"}
    cached = encode_or_load_together(
        encoder, {"a": plain, "b": relabelled}, together, config, device="cpu", progress=False, precisions=precisions
    )
    assert set(encoder.dtypes) == {torch.float32, torch.bfloat16}  # a forward pass per precision
    assert encoder.items_encoded == 2 * len(image_files)
    for name, precision in (("a", "float32"), ("b", "bfloat16")):
        samples = plain if name == "a" else relabelled
        reader = DtypeRecordingEncoder()
        alone = encode_or_load(
            reader, samples, CacheConfig(save_dir=tmp_path, precision=precision), name=name, progress=False
        )
        assert reader.items_encoded == 0  # found: the entry's fingerprint names its own precision
        assert torch.equal(alone.features(), cached[name].features())
        fresh = encode_or_load(DtypeRecordingEncoder(), samples, CacheConfig(precision=precision), progress=False)
        torch.testing.assert_close(fresh.features(), cached[name].features())  # each part computed in its own
    with pytest.raises(ValueError, match="precisions name data sets"):
        encode_or_load_together(encoder, {"a": plain}, list(zip(plain)), tmp_path, precisions={"c": "float32"})


class SmallMemoryEncoder(DtypeRecordingEncoder):
    """Runs out of memory above 2 images a pass, as a GPU does on a batch too large."""

    def forward(self, batch):
        if len(batch) > 2:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return super().forward(batch)


def test_per_precision_passes_split_to_retry_keep_every_row_in_its_own_entry(tmp_path, image_files):
    plain = [SimilarityGroupSample(path, 0) for path in image_files]
    relabelled = [SimilarityGroupSample(path, 1) for path in image_files]
    config = CacheConfig(save_dir=tmp_path, batch_size=8, num_workers=0)
    cached = encode_or_load_together(
        SmallMemoryEncoder(),
        {"a": plain, "b": relabelled},
        list(zip(plain, relabelled)),
        config,
        device="cpu",
        progress=False,
        precisions={"b": "bfloat16"},
    )
    for name, precision in (("a", "float32"), ("b", "bfloat16")):
        samples = plain if name == "a" else relabelled
        alone = encode_or_load(DtypeRecordingEncoder(), samples, CacheConfig(precision=precision), progress=False)
        torch.testing.assert_close(cached[name].features(), alone.features())
