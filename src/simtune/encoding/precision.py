"""The arithmetic an inference pass runs in: mixed precision where the hardware computes it natively,
float32 everywhere else.

On a GPU, autocast in bfloat16 (float16 where bfloat16 is not supported) roughly doubles throughput. On
a CPU, bfloat16 pays off only with native bfloat16 instructions (AVX512-BF16 or AMX); without them it is
emulated and slower than float32, so ``"auto"`` stays in float32 there. Results always leave in float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@lru_cache(maxsize=1)
def cpu_has_native_bfloat16() -> bool:
    """AVX512-BF16 or AMX-BF16: what PyTorch reports, else the kernel's CPU flags."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        try:
            found = capabilities()
            return bool(found.get("avx512_bf16") or found.get("amx_bf16"))
        except (RuntimeError, AttributeError):
            pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; expected one of {list(PRECISIONS)}")
    return precision


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain float32 (no autocast)."""
    device = torch.device(device)
    check_precision(precision)
    if precision == "float32":
        return None
    if precision != "auto":
        return _DTYPES[precision]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bfloat16():
        return torch.bfloat16
    return None


def precision_name(device: torch.device | str, precision: str = "auto") -> str:
    """What ``precision`` resolves to on ``device``: "float32", "bfloat16" or "float16"."""
    dtype = autocast_dtype(device, precision)
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


@contextlib.contextmanager
def inference_context(device: torch.device | str, precision: str = "auto") -> Iterator[None]:
    """``torch.inference_mode`` plus autocast in the resolved dtype (nothing more in float32)."""
    device = torch.device(device)
    dtype = autocast_dtype(device, precision)
    with torch.inference_mode():
        if dtype is None:
            yield
        else:
            with torch.autocast(device.type, dtype=dtype):
                yield
