"""The inference precision: chosen from what the device computes natively, float32 elsewhere."""

import pytest
import torch

from simtune.encoding import autocast_dtype, cpu_has_native_bfloat16, inference_context, precision_name
from simtune.encoding import precision as precision_module


def test_cpu_auto_is_bfloat16_only_with_native_instructions(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_native_bfloat16", lambda: True)
    assert autocast_dtype("cpu") is torch.bfloat16
    monkeypatch.setattr(precision_module, "cpu_has_native_bfloat16", lambda: False)
    assert autocast_dtype("cpu") is None
    assert precision_name("cpu") == "float32"


def test_explicit_precisions_and_cuda_auto(monkeypatch):
    assert autocast_dtype("cpu", "float32") is None
    assert autocast_dtype("cpu", "bfloat16") is torch.bfloat16
    assert autocast_dtype("cuda", "float16") is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert autocast_dtype("cuda") is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert precision_name("cuda") == "bfloat16"
    with pytest.raises(ValueError, match="precision 'half'"):
        autocast_dtype("cpu", "half")


def test_detection_agrees_with_the_kernel_flags():
    flags = open("/proc/cpuinfo").read()
    assert cpu_has_native_bfloat16() == (" avx512_bf16" in flags or " amx_bf16" in flags)


def test_context_runs_matmuls_in_the_chosen_dtype():
    a = torch.randn(4, 4)
    with inference_context("cpu", "bfloat16"):
        assert (a @ a).dtype is torch.bfloat16
    with inference_context("cpu", "float32"):
        product = a @ a
        assert product.dtype is torch.float32
    assert product.is_inference()
