"""Which class a saved component is: a short name for built-ins, an import path for user classes.

Loading a model never imports a module because a file names it: a config is data, and importing
``payload:X`` would run ``payload.py`` (found in the working directory, or shipped beside the model)
before any check could refuse it. So a loader resolves only

- simtune's built-ins, listed here by name (a moved module changes the path below, never the name), and
- classes the user allowed: passed as ``trusted_classes`` (classes or already imported modules), or
  registered once with :func:`register_class`.

A user's class is saved as ``"module:QualName"``; :func:`class_reference` checks at save time that the
path names the class being saved, because discovering a wrong path at load time is too late.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any, TypeVar

from simtune.models.errors import ModelFileError, UntrustedClassError

BUILTINS: dict[str, str] = {
    "EfficientNetLiteEncoder": "simtune.models.encoders.efficientnet_lite:EfficientNetLiteEncoder",
    "TorchvisionEncoder": "simtune.models.encoders.torchvision_encoder:TorchvisionEncoder",
    "HuggingFaceVisionEncoder": "simtune.models.encoders.huggingface_vision_encoder:HuggingFaceVisionEncoder",
    "TransformersTextEncoder": "simtune.models.encoders.transformers_encoder:TransformersTextEncoder",
    "EmptyHead": "simtune.models.heads.empty_head:EmptyHead",
    "EfficientNetLiteTopHead": "simtune.models.heads.efficientnet_lite_top_head:EfficientNetLiteTopHead",
    "LinearHead": "simtune.models.heads.linear_head:LinearHead",
    "SkipConnectionHead": "simtune.models.heads.skip_connection_head:SkipConnectionHead",
    "GatedHead": "simtune.models.heads.gated_head:GatedHead",
    "WideningHead": "simtune.models.heads.widening_head:WideningHead",
    "StackedProjectionHead": "simtune.models.heads.stacked_projection_head:StackedProjectionHead",
    "SequentialHead": "simtune.models.heads.sequential_head:SequentialHead",
}

Trusted = Iterable["type | ModuleType"]
ClassT = TypeVar("ClassT", bound=type)

_registered: dict[str, type] = {}


def import_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_class(cls: ClassT) -> ClassT:
    """Allows every later load in this process to rebuild ``cls`` from a saved model; usable as a decorator.

    Registering is a statement of trust: a model naming this class runs its constructor on load.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_class expects a class, got {cls!r}")
    _check_saveable(cls)
    _registered[import_path(cls)] = cls
    return cls


def class_reference(cls: type) -> dict[str, str]:
    """``{"builtin": name}`` or ``{"import_path": "module:QualName"}``; raises if ``cls`` cannot be re-imported."""
    path = import_path(cls)
    for name, builtin_path in BUILTINS.items():
        if builtin_path == path:
            return {"builtin": name}
    _check_saveable(cls)
    module = sys.modules.get(cls.__module__)
    if module is None or _attribute(module, cls.__qualname__) is not cls:
        raise TypeError(f"cannot save {path}: that import path names a different class than the one being saved")
    return {"import_path": path}


def _check_saveable(cls: type) -> None:
    """A class from ``__main__`` or inside a function has no import path another process could allow."""
    path = import_path(cls)
    if cls.__module__ == "__main__":
        raise TypeError(
            f"cannot save {cls.__qualname__}: it is defined in __main__ (the script being run), so it cannot "
            "be imported when the model is loaded elsewhere. Move the class into a module (e.g. my_encoders.py), "
            "import it from there, and save again."
        )
    if "<locals>" in cls.__qualname__:
        raise TypeError(
            f"cannot save {path}: the class is defined inside a function, so it cannot be imported when the "
            "model is loaded. Define it at the top level of a module and save again."
        )


def resolve_class(reference: Any, expected_base: type | tuple[type, ...], source: str, trusted: Trusted = ()) -> type:
    """The class named by ``reference`` (from :func:`class_reference`); ``source`` names the file it came from.

    Imports nothing but simtune's own built-in modules; a user class must be in ``trusted`` (a class, or a
    module the caller already imported) or registered. Every refusal is a :class:`ModelFileError`.
    """
    if isinstance(reference, dict) and "builtin" in reference:
        name = reference["builtin"]
        if name not in BUILTINS:
            raise ModelFileError(f"{source}: unknown built-in class {name!r}; known: {sorted(BUILTINS)}")
        path = BUILTINS[name]
        module_name, _, qualname = path.partition(":")
        cls = _attribute(importlib.import_module(module_name), qualname)
    elif isinstance(reference, dict) and isinstance(reference.get("import_path"), str):
        path = reference["import_path"]
        cls = _allowed(path, trusted)
        if cls is None:
            raise UntrustedClassError(_refusal(source, path), class_path=path)
    else:
        raise ModelFileError(f"{source}: class reference {reference!r} has neither 'builtin' nor 'import_path'")
    if not (isinstance(cls, type) and issubclass(cls, expected_base)):
        bases = expected_base if isinstance(expected_base, tuple) else (expected_base,)
        raise ModelFileError(f"{source}: {path!r} is not a subclass of {' or '.join(b.__name__ for b in bases)}")
    return cls


def _allowed(path: str, trusted: Trusted) -> Any:
    """The object ``path`` names among the trusted classes/modules and the registered classes, else None."""
    module_name, _, qualname = path.partition(":")
    for item in trusted:
        if isinstance(item, ModuleType):
            if item.__name__ == module_name and qualname:
                return _attribute(item, qualname)
        elif isinstance(item, type):
            if import_path(item) == path:
                return item
        else:
            raise TypeError(f"trusted_classes holds {item!r}; expected classes or imported modules")
    return _registered.get(path)


def _refusal(source: str, path: str) -> str:
    module_name, _, qualname = path.partition(":")
    name = qualname.split(".")[0] or "TheClass"
    return (
        f"{source}: refusing to load class {path!r}: loading imports only simtune's built-in classes and "
        f"classes you allow. If you trust this model and its code, import the class yourself "
        f"(from {module_name} import {name}) and pass it: SimilarityModel.load(path, trusted_classes=[{name}]), "
        f"or call simtune.models.register_class({name}) once before loading"
    )


def _attribute(root: Any, qualname: str) -> Any:
    found = root
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return None
    return found
