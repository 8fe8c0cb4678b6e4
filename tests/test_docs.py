"""Every python block of every docs/*.md page runs, in order, as one module per page.

A page runs in a fresh working folder holding ``photos/``: a few classes of real car photos (one
folder per class, linked from the shared cars data set, see conftest.py), for pages that need images.
The page is imported as a module (not run as ``__main__``), so classes it defines can be saved and
loaded again by import path, as a user's own module would be. A page that trains carries the HTML
comment ``<!-- docs-test: slow -->`` and is marked slow; a page of measurements and commands only carries
``<!-- docs-test: no python -->`` instead of a python block. New pages are picked up without changes here.
"""

import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PHOTO_CLASSES, PHOTOS_PER_CLASS = 8, 8
SLOW = "<!-- docs-test: slow -->"
NO_PYTHON = "<!-- docs-test: no python -->"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.M | re.S)


def pages() -> list:
    found = sorted(DOCS.glob("*.md"))
    return [
        pytest.param(page, id=page.stem, marks=[pytest.mark.slow] if SLOW in page.read_text(encoding="utf-8") else [])
        for page in found
    ]


def make_photos(folder: Path, cars_data: Path) -> None:
    """``photos/<class>/<image>.jpg``: the first classes of the car photos, a few images each."""
    for class_dir in sorted(p for p in (cars_data / "images").iterdir() if p.is_dir())[:PHOTO_CLASSES]:
        target = folder / "photos" / class_dir.name
        target.mkdir(parents=True)
        for image in sorted(class_dir.glob("*.jpg"))[:PHOTOS_PER_CLASS]:
            (target / image.name).symlink_to(image.resolve())


@pytest.mark.parametrize("page", pages())
def test_every_python_block_of_the_page_runs(page, tmp_path, monkeypatch, cars_data):
    blocks = python_blocks(page)
    if NO_PYTHON in page.read_text(encoding="utf-8"):
        assert not blocks, f"{page.name} says it has no python block, but has {len(blocks)}"
        return
    assert blocks, f"{page.name} has no python block (a page of measurements only says {NO_PYTHON})"
    make_photos(tmp_path, cars_data)
    module = "docs_" + re.sub(r"\W", "_", page.stem)
    (tmp_path / f"{module}.py").write_text("\n\n".join(blocks), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module(module)
    finally:
        sys.modules.pop(module, None)


def test_docs_exist_and_every_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = sorted(DOCS.glob("*.md"))
    assert {"getting-started.md", "losses.md", "porting-from-quaterion.md"} <= {page.name for page in found}
    assert [page.name for page in found if f"(docs/{page.name})" not in readme] == []
