"""The README's Quickstart example runs as written (on two real car images named as in the example)."""

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CARS = ROOT / "../shared/datasets/stanford-cars-crop224/images"


def quickstart_code() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quickstart\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    assert section, "README.md has no '## Quickstart' section"
    block = re.search(r"^```python\n(.*?)^```", section.group(1), flags=re.M | re.S)
    assert block, "the Quickstart section has no python code block"
    return block.group(1)


@pytest.mark.slow
def test_quickstart_example_runs(tmp_path, monkeypatch):
    code = quickstart_code()
    assert len(code.strip().splitlines()) <= 12
    for name, image in zip(("car1.jpg", "car2.jpg"), (next((CARS / "001").glob("*.jpg")), next((CARS / "100").glob("*.jpg")))):
        (tmp_path / name).symlink_to(image.resolve())
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    namespace = runpy.run_path(str(script))
    assert namespace["embeddings"].shape == (2, 1280)
    assert (tmp_path / "my_model" / "config.json").is_file()
