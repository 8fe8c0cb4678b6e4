"""A missing, truncated or modified file of a saved model is reported by name."""

import json

import pytest
from safetensors import safe_open
from toy_encoders import ToyEncoder

from simtune.models import ModelFileError, SimilarityModel
from simtune.models.heads import LinearHead


@pytest.fixture
def saved(tmp_path):
    SimilarityModel(ToyEncoder(size=4), LinearHead(4)).save(tmp_path / "model")
    return tmp_path / "model"


def test_missing_weights_file(saved):
    (saved / "head" / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"head/weights.safetensors: file is missing"):
        SimilarityModel.load(saved)


def test_truncated_weights_file(saved):
    weights = saved / "encoders" / "default" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match=r"encoders/default/weights.safetensors: file is truncated"):
        SimilarityModel.load(saved)


def test_modified_weights_file(saved):
    weights = saved / "head" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"head/weights.safetensors: file was modified"):
        SimilarityModel.load(saved)


def test_modified_component_config(saved):
    config = saved / "head" / "config.json"
    content = json.loads(config.read_text())
    content["config"]["output_size"] = 3
    config.write_text(json.dumps(content))
    with pytest.raises(ModelFileError, match=r"head/config.json: file (is truncated|was modified)"):
        SimilarityModel.load(saved)


def test_malformed_or_foreign_top_level_config(saved, tmp_path):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"model/config.json: not valid JSON"):
        SimilarityModel.load(saved)
    (saved / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(ModelFileError, match="not a saved SimilarityModel"):
        SimilarityModel.load(saved)
    with pytest.raises(ModelFileError, match="no such model folder"):
        SimilarityModel.load(tmp_path / "nowhere")


def test_standalone_component_checks_its_weights_and_architecture(tmp_path):
    LinearHead(4).save(tmp_path / "head")
    weights = tmp_path / "head" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="weights.safetensors: file is truncated"):
        LinearHead.load(tmp_path / "head")
    # A consistent but wrong weights file (right hash, other architecture) names both files.
    LinearHead(4).save(tmp_path / "head")
    LinearHead(4, output_size=2).save(tmp_path / "other")
    config = json.loads((tmp_path / "head" / "config.json").read_text())
    config["weights"] = json.loads((tmp_path / "other" / "config.json").read_text())["weights"]
    (tmp_path / "head" / "config.json").write_text(json.dumps(config))
    (tmp_path / "head" / "weights.safetensors").write_bytes((tmp_path / "other" / "weights.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match="does not match the architecture"):
        LinearHead.load(tmp_path / "head")


def test_a_saved_model_is_json_and_safetensors_only(saved):
    files = sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file())
    assert files == [
        "config.json",
        "encoders/default/config.json",
        "encoders/default/weights.safetensors",
        "head/config.json",
        "head/weights.safetensors",
    ]
    for path in saved.rglob("*.json"):
        json.loads(path.read_text())
    for path in saved.rglob("*.safetensors"):
        with safe_open(path, framework="pt") as weights:
            assert list(weights.keys())


def test_a_manifest_that_skips_a_file_or_escapes_the_folder_is_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    record = config["files"].pop("head/weights.safetensors")
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=r"no size/sha256 record for \['head/weights.safetensors'\]"):
        SimilarityModel.load(saved)
    config["files"]["head/weights.safetensors"] = record
    config["files"]["../outside.txt"] = record
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="points outside the model folder"):
        SimilarityModel.load(saved)
