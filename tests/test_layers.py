"""Imports point one way: the core (``simtune`` outside ``simtune.apps``) never imports an app, and within the
images app ``data`` imports neither ``run`` nor ``service``, and ``run`` does not import ``service``.

Read from the source with ``ast``, so an import inside a function (the commands import late, to keep ``--help``
fast) counts as much as one at the top, and so does ``importlib.import_module("...")`` with a literal name.
"""

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
IMAGES = "simtune.apps.images"
# (importer's package, packages it must not import)
RULES = [
    (f"{IMAGES}.data", (f"{IMAGES}.run", f"{IMAGES}.service")),
    (f"{IMAGES}.run", (f"{IMAGES}.service",)),
]


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def imported(root: Path, path: Path) -> set[tuple[int, str]]:
    """(line, module) for every module ``path`` imports, relative imports resolved."""
    module = module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            # ``from a import b`` may import the module a.b: both count
            found |= {(node.lineno, base)} | {(node.lineno, f"{base}.{alias.name}") for alias in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
            "import_module",
            "__import__",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add((node.lineno, node.args[0].value))
    return found


def violations(importers: Callable[[str], bool], forbidden: tuple[str, ...], root: Path = SOURCE) -> list[str]:
    """``file:line imports module`` for each import of a ``forbidden`` package by a module ``importers`` takes
    (one per import: its shortest forbidden name)."""
    found: dict[tuple[str, int], str] = {}
    for path in root.rglob("*.py"):
        if importers(module_name(root, path)):
            for line, name in imported(root, path):
                where = (path.relative_to(root).as_posix(), line)
                if any(within(name, package) for package in forbidden) and len(name) < len(
                    found.get(where, name + "?")
                ):
                    found[where] = name
    return [f"{file}:{line} imports {name}" for (file, line), name in sorted(found.items())]


def core(module: str) -> bool:
    return not within(module, "simtune.apps")


def test_the_core_never_imports_the_apps():
    assert violations(core, ("simtune.apps",)) == []


@pytest.mark.parametrize(("importer", "forbidden"), RULES, ids=lambda value: str(value).rpartition(".")[2])
def test_the_images_app_imports_downwards_only(importer: str, forbidden: tuple[str, ...]):
    assert violations(lambda module: within(module, importer), forbidden) == []


def test_the_check_sees_every_kind_of_import(tmp_path: Path):
    package = tmp_path / "simtune" / "apps" / "images" / "data"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "late.py").write_text("def f():\n    from simtune.apps.images.run import train\n")
    (package / "relative.py").write_text("from ..service import serve\n")
    (package / "by_name.py").write_text("import importlib\nimportlib.import_module('simtune.apps.images.run.x')\n")
    (package / "fine.py").write_text("from simtune.apps.images.data.split import ClassSplit\nimport simtune.losses\n")
    (tmp_path / "simtune" / "cli.py").write_text("from simtune import apps\n")
    data = violations(lambda module: within(module, f"{IMAGES}.data"), RULES[0][1], root=tmp_path)
    assert data == [
        "simtune/apps/images/data/by_name.py:2 imports simtune.apps.images.run.x",
        "simtune/apps/images/data/late.py:2 imports simtune.apps.images.run",
        "simtune/apps/images/data/relative.py:1 imports simtune.apps.images.service",
    ]
    assert violations(core, ("simtune.apps",), root=tmp_path) == ["simtune/cli.py:1 imports simtune.apps"]
