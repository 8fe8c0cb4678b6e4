import pytest
import torch

from simtune.train.cache import CacheConfig, CacheType


def test_defaults_and_coercion(tmp_path):
    config = CacheConfig(cache_type="cpu", save_dir=str(tmp_path), dtype="float16")
    assert config.cache_type is CacheType.CPU and config.save_dir == tmp_path
    assert config.torch_dtype == torch.float16


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cache_type": "disk"}, "cache_type='disk'"),
        ({"dtype": "bfloat16"}, "dtype='bfloat16'"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"views": 0}, "views=0"),
        ({"num_workers": -1}, "num_workers=-1"),
    ],
)
def test_bad_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        CacheConfig(**kwargs)


def test_storage_device_follows_training_device():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert CacheConfig().storage_device(cpu) == cpu
    assert CacheConfig().storage_device(gpu) == gpu
    assert CacheConfig(cache_type="cpu").storage_device(gpu) == cpu
    with pytest.raises(ValueError, match="cache_type=GPU but training runs on cpu"):
        CacheConfig(cache_type="gpu").storage_device(cpu)
