"""Saving and loading components without pickle: ``config.json`` (class + constructor config) next to
``weights.safetensors``, written into a temporary folder that replaces the target only once complete.

Every file is recorded with its size and sha256, so a missing, truncated or edited file is reported by
name instead of surfacing as a shape error (or, worse, silently different embeddings). Whatever is wrong
with a saved model is raised as :class:`ModelFileError`; which classes a load may build is decided by
:mod:`simtune.models.registry` (built-ins and classes the user allowed, nothing a file names).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from simtune.atomic import replace_directory
from simtune.models.errors import ModelFileError
from simtune.models.registry import Trusted, class_reference, resolve_class

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def file_record(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": _sha256(path)}


def verify_file(path: Path, record: dict[str, Any], recorded_in: Path) -> None:
    """Checks ``path`` against the size/sha256 ``record`` kept in ``recorded_in``."""
    if not isinstance(record, dict) or not {"size", "sha256"} <= set(record):
        raise ModelFileError(f"{recorded_in}: the size/sha256 record of {path.name} is malformed ({record!r})")
    if not path.is_file():
        raise ModelFileError(f"{path}: file is missing")
    size = path.stat().st_size
    if size == record["size"] and _sha256(path) == record["sha256"]:
        return
    if path.suffix == ".safetensors" and size < _safetensors_declared_size(path, default=size + 1):
        raise ModelFileError(f"{path}: file is truncated ({size} of {record['size']} bytes)")
    raise ModelFileError(
        f"{path}: file was edited or damaged since it was saved (its sha256 does not match the one recorded in "
        f"{recorded_in}; {size} bytes, {record['size']} recorded)"
    )


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelFileError(f"{path}: file is missing")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(loaded, dict):
        raise ModelFileError(f"{path}: expected a JSON object, found {type(loaded).__name__}")
    return loaded


def write_json(path: Path, content: dict[str, Any]) -> None:
    """Into a staging folder (see :func:`atomic_directory`), so a plain write suffices."""
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yields an empty staging folder beside ``path``; on success it replaces ``path`` (see :mod:`simtune.atomic`).

    An existing model at ``path`` is replaced only after the new one is fully written (and synced), so a
    crash midway leaves the old one intact. A non-empty folder that is not a saved model is never replaced.
    """
    path = Path(path)
    if path.exists() and not (path.is_dir() and (not any(path.iterdir()) or (path / CONFIG_FILE).is_file())):
        raise FileExistsError(f"refusing to overwrite {path}: it exists and is not a saved simtune model")
    with replace_directory(path) as folder:
        yield folder


def write_module(module: nn.Module, folder: Path) -> None:
    """Writes ``module`` (an Encoder or EncoderHead) into an existing folder."""
    reference = class_reference(type(module))  # fails before any weights are written
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    save_model(module, str(weights), force_contiguous=True)  # e.g. channels-last conv weights
    write_json(
        folder / CONFIG_FILE, {"class": reference, "config": module.get_config(), "weights": file_record(weights)}
    )


def read_module(folder: Path, expected_base: type[ModuleT], trusted_classes: Trusted = ()) -> ModuleT:
    """Rebuilds a module written by :func:`write_module` (on the CPU), checking its weights file first.

    ``trusted_classes``: user classes (or imported modules) the saved config may name, besides the built-ins.
    """
    config_path = folder / CONFIG_FILE
    saved = read_json(config_path)
    try:
        reference, config, weights_record = saved["class"], saved["config"], saved["weights"]
    except KeyError as missing:
        raise ModelFileError(f"{config_path}: missing key {missing}") from None
    weights = folder / WEIGHTS_FILE
    verify_file(weights, weights_record, recorded_in=config_path)
    cls = resolve_class(reference, expected_base, source=str(config_path), trusted=trusted_classes)
    if not isinstance(config, dict):
        raise ModelFileError(f"{config_path}: 'config' must be a JSON object, found {type(config).__name__}")
    try:
        module = cls.from_config(config)
    except (TypeError, ValueError, KeyError, RuntimeError, MemoryError) as error:
        raise ModelFileError(
            f"{config_path}: cannot build {cls.__name__} from its config ({one_line(error)})"
        ) from None
    try:
        load_model(module, str(weights), strict=True)
    except SafetensorError as error:
        raise ModelFileError(f"{weights}: not a valid safetensors file ({one_line(error)})") from None
    except RuntimeError as error:
        raise ModelFileError(
            f"{weights}: does not match the architecture in {config_path} ({one_line(error)})"
        ) from None
    return module


def save_module(module: nn.Module, path: str | Path) -> None:
    with atomic_directory(path) as folder:
        write_module(module, folder)


def load_module(
    path: str | Path, expected_base: type[ModuleT], device: str = "cpu", trusted_classes: Trusted = ()
) -> ModuleT:
    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such model folder")
    return read_module(path, expected_base, trusted_classes).to(device).eval()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def one_line(error: BaseException, limit: int = 300) -> str:
    """Library errors can span many lines (one per mismatched tensor); a model error is printed as one."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safetensors_declared_size(path: Path, default: int) -> int:
    """The size a safetensors file's own header promises (8 + header + data), or ``default`` if unreadable."""
    try:
        with path.open("rb") as file:
            header_size = int.from_bytes(file.read(8), "little")
            header = json.loads(file.read(min(header_size, 100_000_000)))
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        return 8 + header_size + max(ends, default=0)
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return default
