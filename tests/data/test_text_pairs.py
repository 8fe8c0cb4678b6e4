import json

import pytest

from simtune.data import read_text_pairs


def write_lines(path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_pairs_come_with_their_line_and_record_and_identical_sides_are_left_out_once(tmp_path):
    path = tmp_path / "faq.jsonl"
    rows = [
        {"question": "what is s3?", "answer": "object storage", "filename": "s3_faq"},
        {"question": "same text", "answer": "same text ", "filename": "x"},
        {"question": "what is sqs?", "answer": "a queue", "filename": "sqs_faq"},
    ]
    write_lines(path, [json.dumps(row).encode() for row in rows[:2]] + [b"   "] + [json.dumps(rows[2]).encode()])
    with pytest.warns(UserWarning, match="left out 1 pair\\(s\\) whose two sides are the same text") as caught:
        pairs = read_text_pairs(path)
    assert len(caught) == 1
    assert [(number, record["filename"], pair.obj_a, pair.obj_b) for number, record, pair in pairs] == [
        (1, "s3_faq", "what is s3?", "object storage"),
        (4, "sqs_faq", "what is sqs?", "a queue"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"question": "caf\xe9", "answer": "x"}', r"faq.jsonl:2: not UTF-8 text"),
        (b'{"question": "a", ', r"faq.jsonl:2: not valid JSON"),
        (b'["a", "b"]', r"faq.jsonl:2: expected a JSON object, got list"),
        (b'{"question": "a"}', r"faq.jsonl:2: field 'answer' must be a non-empty text, got missing"),
        (b'{"question": "", "answer": "b"}', r"faq.jsonl:2: field 'question' must be a non-empty text, got empty"),
        (b'{"question": 3, "answer": "b"}', r"faq.jsonl:2: field 'question' must be a non-empty text, got 3"),
    ],
)
def test_a_bad_line_is_named_by_its_number(tmp_path, line, message):
    path = tmp_path / "faq.jsonl"
    write_lines(path, [b'{"question": "fine", "answer": "ok"}', line])
    with pytest.raises(ValueError, match=message):
        read_text_pairs(path)
