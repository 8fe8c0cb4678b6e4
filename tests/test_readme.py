"""The README's python examples run as written (Quickstart: on two real car images named as in the example)."""

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_block(title: str) -> str:
    """The first python code block of the README section ``## {title}``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    assert section, f"README.md has no '## {title}' section"
    block = re.search(r"^```python\n(.*?)^```", section.group(1), flags=re.M | re.S)
    assert block, f"the {title} section has no python code block"
    return block.group(1)


@pytest.mark.slow
def test_quickstart_example_runs(tmp_path, monkeypatch, cars_data):
    code = python_block("Quickstart")
    assert len(code.strip().splitlines()) <= 12
    for name, image in zip(
        ("car1.jpg", "car2.jpg"),
        (next((cars_data / "images/001").glob("*.jpg")), next((cars_data / "images/100").glob("*.jpg"))),
    ):
        (tmp_path / name).symlink_to(image.resolve())
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    namespace = runpy.run_path(str(script))
    assert namespace["embeddings"].shape == (2, 1280)
    assert (tmp_path / "my_model" / "config.json").is_file()


def test_measure_retrieval_example_runs(tmp_path, capsys):
    script = tmp_path / "measure.py"
    script.write_text(python_block("Measure retrieval"))
    namespace = runpy.run_path(str(script))
    result = namespace["result"]
    assert set(result.metrics) == {"r_precision", "map_at_r", "precision_at_1", "recall_at_10", "mrr", "ndcg_at_10"}
    assert result.num_queries == 2000 and 0 < result.metrics["r_precision"] < 0.2  # random embeddings: near chance
    assert "r_precision" in capsys.readouterr().out
