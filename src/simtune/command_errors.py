"""How every simtune command reports bad input: one ``error: ...`` line on stderr, exit code 2, no traceback.

Exit code 2 is what the command line already returns for a bad option, so a script tells bad input (2) from a
crash (1, with its traceback). Bad input is what simtune raises as ``ValueError`` (its model, search and
data errors all are) or what the system says as ``OSError`` (a missing file, a busy port, a full disk).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    """End the command with ``error: message``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(BAD_INPUT)


@contextmanager
def one_line_errors(reword: Callable[[str], str] = str) -> Iterator[None]:
    """Bad input raised inside becomes ``fail(reword(message))``; anything else keeps its traceback."""
    try:
        yield
    except (ValueError, OSError) as error:
        fail(reword(str(error)))
