import pytest

from simtune.search import IndexSchema, InvalidQueryError, ModelMismatchError, parse_filters


def test_schema_round_trips_through_json():
    schema = IndexSchema("abc", 16, "dot_product", {"make": "keyword", "year": "integer"})
    import json

    assert IndexSchema.from_dict(json.loads(schema.to_json())) == schema


def test_schema_rejects_unknown_field_types_and_distances():
    with pytest.raises(ValueError, match="filter field 'make' has type 'text'"):
        IndexSchema("abc", 4, "cosine", {"make": "text"})
    with pytest.raises(ValueError, match="unsupported distance 'hamming'"):
        IndexSchema("abc", 4, "hamming")


def test_another_embedding_size_is_another_model():
    with pytest.raises(ModelMismatchError, match="16-d"):
        IndexSchema("abc", 8).check_same_model(IndexSchema("abc", 16))


@pytest.mark.parametrize(
    "expressions, message",
    [(["make"], "expected FIELD=VALUE"), (["=BMW"], "expected FIELD=VALUE"), (["make=A", "make=B"], "given twice")],
)
def test_parse_filters_rejects_malformed_expressions(expressions, message):
    with pytest.raises(InvalidQueryError, match=message):
        parse_filters(expressions)


def test_parse_filters_splits_on_the_first_equals_sign():
    assert parse_filters(["make=BMW", " class_name = BMW M3=Coupe "]) == {"make": "BMW", "class_name": "BMW M3=Coupe"}


@pytest.mark.parametrize("value", ["99999999999999999999999", str(2**63), str(-(2**63) - 1), True])
def test_integer_filters_outside_int64_are_invalid_queries(value):
    schema = IndexSchema("m", 4, "cosine", {"year": "integer"})
    with pytest.raises(
        InvalidQueryError, match=r"year must be an integer from -9223372036854775808 to 9223372036854775807"
    ):
        schema.check_filter({"year": value})
    assert schema.check_filter({"year": str(2**63 - 1)}) == {"year": 2**63 - 1}
