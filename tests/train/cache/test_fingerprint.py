import os

import torch
from train_fakes import GroupImages, TinyConvEncoder

from simtune.data import SimilarityGroupSample
from simtune.train.cache.fingerprint import cache_fingerprint, dataset_keys_hash, describe_mismatch, weights_hash


def test_weights_hash_sees_parameters_and_batchnorm_statistics():
    encoder = TinyConvEncoder()
    before = weights_hash(encoder)
    assert weights_hash(TinyConvEncoder()) == before
    with torch.no_grad():
        encoder.net[1].running_var[0] += 1e-3
    assert weights_hash(encoder) != before


def test_dataset_keys_come_from_cache_key_or_file_stats(tmp_path):
    dataset = GroupImages()
    before = dataset_keys_hash(dataset)
    dataset.groups[0] = 5
    assert dataset_keys_hash(dataset) != before

    image = tmp_path / "a.jpg"
    image.write_bytes(b"one")
    samples = [SimilarityGroupSample(str(image), 0)]
    first = dataset_keys_hash(samples)
    image.write_bytes(b"other content")
    os.utime(image, ns=(1, 1))
    assert dataset_keys_hash(samples) != first
    assert dataset_keys_hash([SimilarityGroupSample(str(image), 1)]) != dataset_keys_hash(samples)


def test_mismatch_names_the_changed_components():
    encoder, dataset = TinyConvEncoder(), GroupImages()
    old = cache_fingerprint({"default": encoder}, dataset, views=1, dtype="float32")
    assert describe_mismatch(old, cache_fingerprint({"default": TinyConvEncoder(seed=1)}, dataset, 1, "float32")) == (
        "encoder 'default' identity, encoder 'default' weights"
    )
    assert describe_mismatch(old, cache_fingerprint({"default": encoder}, dataset, 2, "float32")) == "format"


def test_the_precision_is_a_component_unless_float32():
    encoder, dataset = TinyConvEncoder(), GroupImages()
    single = cache_fingerprint({"default": encoder}, dataset, 1, "float32")
    assert cache_fingerprint({"default": encoder}, dataset, 1, "float32", precision="float32") == single
    bfloat = cache_fingerprint({"default": encoder}, dataset, 1, "float32", precision="bfloat16")
    assert describe_mismatch(single, bfloat) == "precision"
    half = cache_fingerprint({"default": encoder}, dataset, 1, "float32", precision="float16")
    assert describe_mismatch(bfloat, half) == "precision"
    assert describe_mismatch(single, cache_fingerprint({"default": encoder}, dataset, 1, "float16")) == "dtype"
