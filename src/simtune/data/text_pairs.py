"""Text pairs (question/answer, query/passage) from a JSON Lines file, with every bad line named.

A data file is checked as it is read, so a bad line stops the run at the start with its line number,
not hours into training: bytes that are not UTF-8, a line that is not a JSON object, a missing or
empty text. A pair whose two sides are the same text teaches nothing (it is its own positive) and
``PairSampler`` cannot rank it, so such pairs are left out, and how many is said once.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simtune.data.samples import SimilarityPairSample


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line, streamed; a ValueError names the first bad line."""
    path = Path(path)
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: not UTF-8 text ({error.reason} at byte {error.start})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield number, record


def read_text_pairs(
    path: str | Path, first: str = "question", second: str = "answer"
) -> list[tuple[int, dict[str, Any], SimilarityPairSample]]:
    """``(line number, record, SimilarityPairSample(record[first], record[second]))`` for every line:
    the record comes along so a caller can split by any other field (e.g. the source document)."""
    pairs, identical = [], 0
    for number, record in read_jsonl(path):
        texts = []
        for field in (first, second):
            text = record.get(field)
            if not isinstance(text, str) or not text.strip():
                found = "missing" if field not in record else "empty" if isinstance(text, str) else repr(text)
                raise ValueError(f"{path}:{number}: field {field!r} must be a non-empty text, got {found}")
            texts.append(text)
        if texts[0].strip() == texts[1].strip():
            identical += 1
            continue
        pairs.append((number, record, SimilarityPairSample(texts[0], texts[1])))
    if identical:
        warnings.warn(
            f"{path}: left out {identical} pair(s) whose two sides are the same text", UserWarning, stacklevel=2
        )
    if not pairs:
        raise ValueError(f"{path}: no pairs ({first!r}, {second!r}) in it")
    return pairs
