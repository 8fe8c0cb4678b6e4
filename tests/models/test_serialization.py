"""A missing, truncated, edited or damaged file of a saved model is reported by name, always as ModelFileError."""

import json

import pytest
from safetensors import safe_open
from toy_encoders import ToyEncoder

from simtune.models import ModelFileError, SimilarityModel
from simtune.models.heads import LinearHead
from simtune.models.serialization import file_record


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
    with pytest.raises(ModelFileError, match=r"head/weights.safetensors: file was edited or damaged"):
        SimilarityModel.load(saved)


def test_modified_component_config(saved):
    config = saved / "head" / "config.json"
    content = json.loads(config.read_text())
    content["config"]["output_size"] = 3
    config.write_text(json.dumps(content))
    with pytest.raises(ModelFileError, match=r"head/config.json: file was edited or damaged") as edited:
        SimilarityModel.load(saved)
    assert "sha256 does not match the one recorded in" in str(edited.value) and "truncated" not in str(edited.value)


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
    with pytest.raises(ModelFileError, match="does not match the architecture") as mismatch:
        LinearHead.load(tmp_path / "head")
    assert "\n" not in str(mismatch.value)  # torch lists each mismatched tensor on its own line


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


def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _rehash(saved, relative):
    """What an editor who also recomputes every record does: only the content checks can catch it then."""
    if relative.endswith(".safetensors"):
        component = (saved / relative).parent / "config.json"
        component.write_text(
            json.dumps({**json.loads(component.read_text()), "weights": file_record(saved / relative)})
        )
        _rehash(saved, component.relative_to(saved).as_posix())
    config = json.loads((saved / "config.json").read_text())
    config["files"][relative] = file_record(saved / relative)
    (saved / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "relative", ["encoders/default/weights.safetensors", "head/weights.safetensors", "head/config.json"]
)
@pytest.mark.parametrize("damage", ["flip_first", "flip_middle", "flip_last", "truncate_half", "truncate_end", "empty"])
@pytest.mark.parametrize("rehashed", [False, True])
def test_every_damaged_file_raises_model_file_error_naming_it(saved, relative, damage, rehashed):
    path = saved / relative
    size = path.stat().st_size
    if damage.startswith("flip"):
        _flip_byte(path, {"flip_first": 0, "flip_middle": size // 2, "flip_last": size - 1}[damage])
    else:
        path.write_bytes(
            path.read_bytes()[: {"truncate_half": size // 2, "truncate_end": size - 2, "empty": 0}[damage]]
        )
    if rehashed:
        _rehash(saved, relative)
    try:
        SimilarityModel.load(saved)
    except ModelFileError as error:
        assert str(saved) in str(error) and "\n" not in str(error)
    else:  # a flipped byte can land in a weight and still load when the hashes were forged
        assert rehashed and damage.startswith("flip") and relative.endswith(".safetensors")


def test_a_truncated_weights_file_is_called_truncated_even_when_rehashed(saved):
    weights = saved / "head" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="head/weights.safetensors: file is truncated"):
        SimilarityModel.load(saved)
    _rehash(saved, "head/weights.safetensors")
    with pytest.raises(ModelFileError, match="head/weights.safetensors: not a valid safetensors file"):
        SimilarityModel.load(saved)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(encoders=["../../outside"]), "encoder names"),
        (lambda c: c.update(encoders=[1]), "encoder names"),
        (lambda c: c.update(embedding_size=5), "records embedding_size 5, its head outputs 4"),
        (lambda c: c.update(files={"head/config.json": "x"}), "no size/sha256 record"),
    ],
)
def test_a_malformed_top_level_config_is_a_model_file_error(saved, edit, message):
    config = json.loads((saved / "config.json").read_text())
    edit(config)
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=message):
        SimilarityModel.load(saved)
