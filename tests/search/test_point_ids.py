import uuid

import pytest

from simtune.search import InvalidQueryError, parse_point_id, point_id


def test_point_ids_are_stable_uuids_that_differ_per_key():
    assert point_id("images/001/a.jpg") == point_id("images/001/a.jpg")
    assert point_id("images/001/a.jpg") != point_id("images/001/b.jpg")
    assert uuid.UUID(point_id("x")).version == 5


@pytest.mark.parametrize("text", ["../etc/passwd", "..%2F..%2Fx", "", "12345"])
def test_parse_point_id_rejects_anything_but_a_uuid(text):
    with pytest.raises(InvalidQueryError, match="invalid point id"):
        parse_point_id(text)


def test_parse_point_id_canonicalizes_case():
    assert parse_point_id(point_id("x").upper()) == point_id("x")
