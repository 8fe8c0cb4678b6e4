"""Which class a saved component is: a short name for built-ins, an import path for user classes.

Built-ins are listed here by name, so a saved model keeps loading if a module is moved (update the
path below, never the name). A user's class is saved as ``"module:QualName"`` and must therefore be
importable by that path when the model is loaded; :func:`class_reference` checks that at save time,
because discovering it at load time (on another machine, in a service) is too late.
"""

from __future__ import annotations

import importlib
from typing import Any

BUILTINS: dict[str, str] = {
    "EfficientNetLiteEncoder": "simtune.models.encoders.efficientnet_lite:EfficientNetLiteEncoder",
    "TorchvisionEncoder": "simtune.models.encoders.torchvision_encoder:TorchvisionEncoder",
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


def import_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def class_reference(cls: type) -> dict[str, str]:
    """``{"builtin": name}`` or ``{"import_path": "module:QualName"}``; raises if ``cls`` cannot be re-imported."""
    path = import_path(cls)
    for name, builtin_path in BUILTINS.items():
        if builtin_path == path:
            return {"builtin": name}
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
    try:
        found = _import(path)
    except (ImportError, AttributeError) as error:
        raise TypeError(f"cannot save {path}: importing it back failed ({error}); make it importable first") from None
    if found is not cls:
        raise TypeError(f"cannot save {path}: that import path names a different class than the one being saved")
    return {"import_path": path}


def resolve_class(reference: dict[str, Any], expected_base: type, source: str) -> type:
    """The class named by ``reference`` (from :func:`class_reference`); ``source`` names the file it came from.

    A user class is imported by path, which runs that module's code: load models only from sources you trust
    as much as the code you install.
    """
    if "builtin" in reference:
        name = reference["builtin"]
        if name not in BUILTINS:
            raise ValueError(f"{source}: unknown built-in class {name!r}; known: {sorted(BUILTINS)}")
        path = BUILTINS[name]
    elif "import_path" in reference:
        path = reference["import_path"]
    else:
        raise ValueError(f"{source}: class reference {reference!r} has neither 'builtin' nor 'import_path'")
    try:
        cls = _import(path)
    except (ImportError, AttributeError, ValueError) as error:
        raise ImportError(f"{source}: cannot import class {path!r} ({error})") from error
    if not (isinstance(cls, type) and issubclass(cls, expected_base)):
        raise TypeError(f"{source}: {path!r} is not a subclass of {expected_base.__name__}")
    return cls


def _import(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    if not qualname:
        raise ValueError(f"import path {path!r} is not of the form 'module:QualName'")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
