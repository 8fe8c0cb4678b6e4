"""Make, model and year parsed from a Stanford-Cars-style class name ("Aston Martin V8 Vantage Coupe 2012")."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Makes whose name is more than one word; every other make is the first word of the class name.
MULTI_WORD_MAKES = ("AM General", "Aston Martin", "Land Rover")
_YEAR = re.compile(r"^(18|19|20)\d\d$")


@dataclass(frozen=True)
class CarMetadata:
    make: str
    model: str
    year: int | None


def parse_class_name(class_name: str) -> CarMetadata:
    """Split a class name into make, model and year; a name without a trailing year gets ``year=None``."""
    words = class_name.split()
    if not words:
        raise ValueError("class name is empty: cannot parse make and year")
    year = int(words.pop()) if len(words) > 1 and _YEAR.match(words[-1]) else None
    text = " ".join(words)
    make = next((m for m in MULTI_WORD_MAKES if text == m or text.startswith(m + " ")), words[0])
    return CarMetadata(make=make, model=text[len(make) :].strip(), year=year)
