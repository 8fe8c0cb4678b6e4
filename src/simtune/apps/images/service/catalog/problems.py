"""Counted problems with a few examples each: what a catalog skipped and why, reported at the end."""

from __future__ import annotations

from collections import Counter

EXAMPLES_PER_PROBLEM = 3


class Problems:
    """``add("not an image", "notes.txt")`` counts one; ``lines()`` says each kind once with its examples."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        examples = self.examples.setdefault(kind, [])
        if len(examples) < EXAMPLES_PER_PROBLEM:
            examples.append(example)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        return [
            f"{count:,} {kind}, e.g. {'; '.join(self.examples[kind])}"
            for kind, count in sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        ]
