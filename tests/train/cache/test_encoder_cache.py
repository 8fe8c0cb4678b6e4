import logging

import lightning.pytorch as pl
import torch
from train_fakes import GroupImages, TinyConvEncoder, TinyTrainable

import simtune
from simtune.data import ClassBalancedBatchSampler, GroupSimilarityDataLoader
from simtune.train import CacheConfig


def _loaders(num_workers: int = 0):
    train = GroupSimilarityDataLoader(GroupImages(seed=0), batch_size=12, shuffle=True, num_workers=num_workers)
    val = GroupSimilarityDataLoader(GroupImages(seed=100), batch_size=12)
    return train, val


def test_each_item_is_encoded_once_and_the_dataset_read_once(quiet_trainer):
    model = TinyTrainable(cache=CacheConfig(num_workers=0))  # reads are counted in this process
    train, val = _loaders()
    simtune.fit(model, quiet_trainer(epochs=3), train, val)
    encoder = model.model.encoders["default"]
    assert encoder.items_encoded == len(train.dataset) + len(val.dataset)
    assert train.dataset.reads == len(train.dataset)
    assert val.dataset.reads == len(val.dataset)


def test_saved_cache_is_reused_by_the_next_fit(tmp_path, quiet_trainer):
    config = CacheConfig(save_dir=tmp_path / "cache")
    first = TinyTrainable(cache=config)
    simtune.fit(first, quiet_trainer(epochs=1), *_loaders())
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()) == ["train", "val"]

    second = TinyTrainable(cache=config)
    train, val = _loaders()
    simtune.fit(second, quiet_trainer(epochs=1), train, val)
    assert second.model.encoders["default"].items_encoded == 0
    assert train.dataset.reads == 0 and val.dataset.reads == 0


def test_changed_encoder_weights_are_reported_in_one_line_and_rebuilt(tmp_path, quiet_trainer, caplog):
    config = CacheConfig(save_dir=tmp_path / "cache")
    simtune.fit(TinyTrainable(cache=config), quiet_trainer(epochs=1), *_loaders())

    changed = TinyTrainable(cache=config)
    with torch.no_grad():
        changed.model.encoders["default"].net[1].running_mean += 0.1  # BatchNorm statistics count too
    with caplog.at_level(logging.WARNING, logger="simtune"):
        simtune.fit(changed, quiet_trainer(epochs=1), *_loaders())
    stale = [r.getMessage() for r in caplog.records if "stale" in r.getMessage()]
    assert len(stale) == 2 and all("encoder 'default' weights changed" in m and "\n" not in m for m in stale)
    assert changed.model.encoders["default"].items_encoded == 96
    assert len(list((tmp_path / "cache").glob("train-*"))) == 1


def test_changed_dataset_items_are_detected(tmp_path, quiet_trainer, caplog):
    config = CacheConfig(save_dir=tmp_path / "cache")
    simtune.fit(TinyTrainable(cache=config, metrics=False), quiet_trainer(epochs=1), *_loaders())
    model = TinyTrainable(cache=config, metrics=False)
    train, val = _loaders()
    train.dataset.images[3] += 1.0
    with caplog.at_level(logging.WARNING, logger="simtune"):
        simtune.fit(model, quiet_trainer(epochs=1), train, val)
    assert any("train cache" in r.getMessage() and "dataset keys changed" in r.getMessage() for r in caplog.records)
    assert model.model.encoders["default"].items_encoded == len(train.dataset)  # val was still valid


def test_fill_with_workers_matches_fill_in_process(tmp_path, quiet_trainer):
    caches = []
    for workers in (0, 2):
        model = TinyTrainable(cache=CacheConfig(num_workers=workers, batch_size=5), metrics=False)
        simtune.fit(model, quiet_trainer(epochs=1), *_loaders())
        caches.append(model.encoder_cache.get("train"))
    assert torch.equal(caches[0].embeddings["default"], caches[1].embeddings["default"])
    assert torch.equal(caches[0].targets["groups"], caches[1].targets["groups"])


def test_class_balanced_sampler_and_float16_storage(quiet_trainer):
    pl.seed_everything(0)
    dataset = GroupImages(num_classes=6, per_class=8)
    sampler = ClassBalancedBatchSampler(dataset.groups.tolist(), classes_per_batch=3, samples_per_class=4, seed=1)
    train = GroupSimilarityDataLoader(dataset, batch_sampler=sampler)
    model = TinyTrainable(cache=CacheConfig(dtype="float16"), metrics=False)
    seen = []
    model.training_step = _recording(model.training_step, seen)
    simtune.fit(model, quiet_trainer(epochs=2), train)
    assert model.encoder_cache.get("train").embeddings["default"].dtype == torch.float16
    expected = [dataset.groups[batch] for epoch in range(2) for batch in _epoch(sampler, epoch)]
    assert len(seen) == len(expected) and all(torch.equal(a, b) for a, b in zip(seen, expected))


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def _recording(step, seen):
    def record(batch, batch_idx):
        seen.append(batch[1]["groups"].clone())
        return step(batch, batch_idx)

    return record


class AugmentedImages(GroupImages):
    """A fresh random shift on every read, like a random augmentation."""

    def __getitem__(self, index):
        sample = super().__getitem__(index)
        sample.obj = sample.obj + torch.randn(()) * 5
        return sample


def test_augmentation_aware_cache_stores_and_samples_views(quiet_trainer):
    pl.seed_everything(0)
    model = TinyTrainable(cache=CacheConfig(views=3), metrics=False)
    dataset = AugmentedImages()
    train = GroupSimilarityDataLoader(dataset, batch_size=48)
    seen = []
    model.training_step = _recording_keys(model.training_step, seen)
    simtune.fit(model, quiet_trainer(epochs=2), train)
    table = model.encoder_cache.get("train").embeddings["default"]
    assert table.shape[:2] == (3, len(dataset))
    assert model.model.encoders["default"].items_encoded == 3 * len(dataset)
    assert not torch.allclose(table[0], table[1]) and not torch.allclose(table[1], table[2])
    views = torch.cat(seen)[:, 0]
    assert set(views.tolist()) == {0, 1, 2}


def _recording_keys(step, seen):
    def record(batch, batch_idx):
        seen.append(batch[0]["default"].clone())
        return step(batch, batch_idx)

    return record


def test_frozen_encoder_is_cached_while_a_trainable_one_trains(quiet_trainer):
    pl.seed_everything(0)
    model = TinyTrainable(two_encoders=True, cache=CacheConfig(), metrics=False)
    frozen, tuned = model.model.encoders["frozen"], model.model.encoders["tuned"]
    frozen_before = {k: v.clone() for k, v in frozen.state_dict().items()}
    tuned_before = tuned.net[0].weight.detach().clone()
    train, val = _loaders(num_workers=2)
    simtune.fit(model, quiet_trainer(epochs=3), train, val)
    items = len(train.dataset) + len(val.dataset)
    assert frozen.items_encoded == items  # once, at fill time
    assert tuned.items_encoded >= 3 * len(train.dataset)  # every epoch (plus validation)
    assert all(torch.equal(v, frozen_before[k]) for k, v in frozen.state_dict().items())
    assert not torch.equal(tuned.net[0].weight, tuned_before)


class UnkeyedImages(GroupImages):
    cache_key = None


def test_a_dataset_without_item_keys_is_flagged_when_persisted(tmp_path, caplog):
    from simtune.train.cache import EncoderCache

    cache = EncoderCache(CacheConfig(save_dir=tmp_path), {"default": TinyConvEncoder()}, {"train": UnkeyedImages()})
    with caplog.at_level(logging.WARNING, logger="simtune"):
        cache.prepare(torch.device("cpu"))
    assert [r.getMessage() for r in caplog.records if "has no cache_key" in r.getMessage()]
