import pytest
from toy_encoders import ToyEncoder

from simtune.models import Encoder, EncoderHead
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.models.registry import BUILTINS, class_reference, resolve_class


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_resolves_to_the_class_that_saves_under_its_name(name):
    cls = resolve_class({"builtin": name}, (Encoder, EncoderHead), source="test")
    assert cls.__name__ == name and class_reference(cls) == {"builtin": name}


def test_a_subclass_of_a_builtin_is_saved_by_its_own_import_path():
    class_path = f"{__name__}:LiteSubclass"
    assert class_reference(LiteSubclass) == {"import_path": class_path}
    assert resolve_class({"import_path": class_path}, Encoder, source="test") is LiteSubclass


def test_bad_references_name_their_source():
    with pytest.raises(ValueError, match="cfg.json: unknown built-in class 'Nope'"):
        resolve_class({"builtin": "Nope"}, Encoder, source="cfg.json")
    with pytest.raises(ImportError, match="cfg.json: cannot import class 'no_such_module:X'"):
        resolve_class({"import_path": "no_such_module:X"}, Encoder, source="cfg.json")
    with pytest.raises(TypeError, match="cfg.json: 'toy_encoders:ToyEncoder' is not a subclass of EncoderHead"):
        resolve_class({"import_path": "toy_encoders:ToyEncoder"}, EncoderHead, source="cfg.json")
    with pytest.raises(ValueError, match="neither 'builtin' nor 'import_path'"):
        resolve_class({}, Encoder, source="cfg.json")
    assert resolve_class({"import_path": "toy_encoders:ToyEncoder"}, Encoder, source="cfg.json") is ToyEncoder


class LiteSubclass(EfficientNetLiteEncoder):
    pass
