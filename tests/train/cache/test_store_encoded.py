"""store_encoded / load_encoded: outputs computed elsewhere reach fit and encode_or_load without encoding."""

import pytest
import torch
from train_fakes import GroupImages, PairImages, TinyConvEncoder, TinyTrainable

import simtune
from simtune.data import GroupSimilarityDataLoader
from simtune.train import CacheConfig, encode_or_load, load_encoded, store_encoded


def _encoded(encoder: TinyConvEncoder, dataset) -> dict[str, torch.Tensor]:
    """Outputs computed outside simtune's cache, as a user's own pass would."""
    return {"default": encode_or_load(encoder, dataset, progress=False, device="cpu").embeddings["default"][0]}


def _refuse_to_encode(encoder: TinyConvEncoder) -> None:
    def forward(batch):
        raise AssertionError("the encoder ran although its outputs were stored")

    encoder.forward = forward


def test_fit_reads_stored_outputs_and_encodes_nothing(tmp_path, quiet_trainer):
    data = GroupImages()
    config = CacheConfig(save_dir=tmp_path / "cache", num_workers=0)
    outputs = _encoded(TinyConvEncoder(), data)
    trainable = TinyTrainable(cache=config, metrics=False)
    encoder = trainable.model.encoders["default"]
    store_encoded(encoder, data, outputs, config, name="train")
    _refuse_to_encode(encoder)

    simtune.fit(trainable, quiet_trainer(epochs=1), GroupSimilarityDataLoader(data, batch_size=16, shuffle=True))

    cached = trainable.encoder_cache.get("train")
    assert torch.equal(cached.embeddings["default"][0], outputs["default"])
    assert cached.targets["groups"].tolist() == data.groups.tolist()


def test_stored_entry_is_what_encode_or_load_would_have_filled(tmp_path):
    for data in (GroupImages(), PairImages()):
        encoder = TinyConvEncoder()
        filled = encode_or_load(encoder, data, progress=False, device="cpu")
        stored = store_encoded(encoder, data, filled.embeddings["default"][0], tmp_path / type(data).__name__)
        assert stored.kind == filled.kind and stored.targets.keys() == filled.targets.keys()
        assert all(torch.equal(stored.targets[k], filled.targets[k]) for k in filled.targets)
        _refuse_to_encode(encoder)
        again = encode_or_load(encoder, data, tmp_path / type(data).__name__, progress=False, device="cpu")
        assert torch.equal(again.features(), filled.features())


def test_another_encoder_or_other_items_do_not_reuse_the_stored_entry(tmp_path):
    data = GroupImages()
    encoder = TinyConvEncoder()
    planted = torch.zeros(len(data), encoder.embedding_size)  # not what any encoder gives: reuse would show
    store_encoded(encoder, data, planted, tmp_path)
    assert torch.equal(load_encoded(encoder, data, tmp_path, device="cpu").features(), planted)

    other_encoder = TinyConvEncoder(seed=1)
    assert load_encoded(other_encoder, data, tmp_path) is None
    assert not torch.equal(
        encode_or_load(other_encoder, data, tmp_path, progress=False, device="cpu").features(), planted
    )
    assert other_encoder.items_encoded == len(data)

    other_items = GroupImages(seed=1)
    assert load_encoded(encoder, other_items, tmp_path) is None
    encode_or_load(encoder, other_items, tmp_path, progress=False, device="cpu")
    assert encoder.items_encoded == len(other_items)


@pytest.mark.parametrize(
    "outputs, error, message",
    [
        (torch.zeros(47, 8), ValueError, r"outputs\['default'\] has 47 rows but the dataset needs 48"),
        (torch.zeros(48, 5), ValueError, r"outputs\['default'\] has 5 columns but encoder 'default' embeds to 8"),
        (torch.zeros(2, 48, 8), ValueError, r"holds 2 view\(s\) but the CacheConfig has views=1"),
        (
            torch.zeros(48, 8, 1, 1),
            ValueError,
            r"has shape \(48, 8, 1, 1\); expected \(rows, dim\) or \(views, rows, dim\)",
        ),
        (
            torch.zeros(48, 8, dtype=torch.long),
            TypeError,
            r"outputs\['default'\] must be a float tensor, got torch.int64",
        ),
        ({"other": torch.zeros(48, 8)}, ValueError, r"missing \['default'\]; unknown \['other'\]"),
        ([[0.0] * 8] * 48, TypeError, r"outputs must be a tensor or \{encoder name: tensor\}, got list"),
    ],
)
def test_wrong_outputs_are_refused_naming_what_is_wrong(tmp_path, outputs, error, message):
    with pytest.raises(error, match=message):
        store_encoded(TinyConvEncoder(), GroupImages(), outputs, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-stored


def test_pair_rows_views_and_several_encoders_are_checked(tmp_path):
    pairs = PairImages()
    with pytest.raises(
        ValueError, match=rf"has {len(pairs)} rows but the dataset needs {2 * len(pairs)} \(2 per pair item\)"
    ):
        store_encoded(TinyConvEncoder(), pairs, torch.zeros(len(pairs), 8), tmp_path)
    two = {"a": TinyConvEncoder(), "b": TinyConvEncoder(size=4, seed=1)}
    with pytest.raises(TypeError, match=r"outputs is one tensor but there are 2 encoders \(a, b\)"):
        store_encoded(two, GroupImages(), torch.zeros(48, 8), tmp_path)
    views = CacheConfig(save_dir=tmp_path, views=2, dtype="float16")
    stored = store_encoded(two, GroupImages(), {"a": torch.ones(2, 48, 8), "b": torch.ones(2, 48, 4)}, views)
    assert stored.embeddings["a"].dtype == torch.float16 and stored.num_views == 2
    assert load_encoded(two, GroupImages(), views, device="cpu").features(view=1).shape == (48, 12)


def test_a_cache_folder_is_required_and_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="store_encoded needs a cache folder"):
        store_encoded(TinyConvEncoder(), GroupImages(), torch.zeros(48, 8), None)
    with pytest.raises(ValueError, match="load_encoded needs a cache folder"):
        load_encoded(TinyConvEncoder(), GroupImages(), CacheConfig())
    with pytest.raises(ValueError, match=r"cache name '\.\./x' must be"):
        store_encoded(TinyConvEncoder(), GroupImages(), torch.zeros(48, 8), tmp_path, name="../x")
