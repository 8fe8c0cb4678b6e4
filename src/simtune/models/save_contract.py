"""Checked when a model is saved: can each component be rebuilt from what is written?

A component is saved as its ``get_config()`` (JSON) plus its weights (safetensors), and loading calls
``from_config(config)`` and then loads the weights. A component that breaks this contract (a
constructor that takes a module, ``get_config()`` that leaves out required arguments) would save
without complaint and fail only when loaded, on another machine or in a service. So the save checks
first and says which constructor arguments are missing and how to fix it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

_FIX = (
    "simtune saves get_config() (JSON) and the weights (safetensors), then loads with "
    "{cls}.from_config(config) + the weights. Fix: build every submodule inside __init__ from plain "
    "arguments (numbers, strings, lists: e.g. a torchvision model name instead of the model) and return "
    "those arguments from get_config()"
)


class UnrebuildableModuleError(TypeError):
    """A component's saved config and weights would not rebuild it; the message names what is missing."""


def check_rebuildable(module: nn.Module, label: str, base: type) -> None:
    """Raises :class:`UnrebuildableModuleError` unless ``type(module).from_config(get_config())`` rebuilds
    a module with the same parameter and buffer names and shapes. ``label`` names the component
    (``"encoder 'default'"``); ``base`` is its base class (Encoder or EncoderHead)."""
    cls = type(module)
    problem = _config_problem(module, cls, base) or _rebuild_problem(module, cls)
    if problem is None:
        return
    overrides = [name for name in ("save", "load") if _overrides(cls, base, name)]
    note = (
        f" ({cls.__name__} overrides {'/'.join(f'{name}()' for name in overrides)}, which SimilarityModel.save "
        "and SimilarityModel.load never call; whole-module pickles are never written or read)"
        if overrides
        else ""
    )
    raise UnrebuildableModuleError(
        f"cannot save {label} ({cls.__module__}.{cls.__qualname__}): {problem}. {_FIX.format(cls=cls.__name__)}{note}."
    )


def _config_problem(module: nn.Module, cls: type, base: type) -> str | None:
    config = module.get_config()
    if not isinstance(config, Mapping):
        return f"get_config() returned a {type(config).__name__}, not a dict of constructor arguments"
    unserialisable = [key for key, value in config.items() if not _is_json(value)]
    if unserialisable:
        return f"get_config() values for {unserialisable} are not JSON (a module or tensor cannot be saved as config)"
    if _overrides(cls, base, "from_config"):
        return None  # its own from_config decides which arguments it needs; the rebuild below checks it
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    required = [p.name for p in parameters if p.name in named and p.default is p.empty]
    missing = [name for name in required if name not in config]
    if missing:
        return (
            f"its constructor requires {', '.join(missing)}, which get_config() (returning {sorted(config)}) "
            "does not provide"
        )
    unknown = [key for key in config if key not in named]
    if unknown and not takes_any:
        return f"get_config() returns {unknown}, which its constructor does not accept"
    return None


def _rebuild_problem(module: nn.Module, cls: type) -> str | None:
    """Rebuilds on the meta device (no memory, no weights read), or for real if that fails."""
    config = json.loads(json.dumps(module.get_config()))
    try:
        with torch.device("meta"):
            rebuilt = cls.from_config(config)
    except Exception:
        try:
            rebuilt = cls.from_config(config)
        except Exception as error:
            return f"{cls.__name__}.from_config(get_config()) raised {type(error).__name__}: {error}"
    expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in rebuilt.state_dict().items()}
    if expected == found:
        return None
    absent = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    reshaped = sorted(key for key in set(expected) & set(found) if expected[key] != found[key])
    details = [
        f"{title} {_few(keys)}"
        for title, keys in (("lacks weights", absent), ("has unexpected weights", extra), ("reshapes", reshaped))
        if keys
    ]
    return f"{cls.__name__}.from_config(get_config()) builds a different network: it {'; '.join(details)}"


def _overrides(cls: type, base: type, name: str) -> bool:
    return inspect.getattr_static(cls, name) is not inspect.getattr_static(base, name)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _few(keys: list[str], shown: int = 4) -> str:
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")
