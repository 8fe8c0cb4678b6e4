"""How every simtune command reports bad input: one ``error: ...`` line on stderr, exit code 2, no traceback.

Exit code 2 is what the command line already returns for a bad option, so a script tells bad input (2) from a
crash (1, with its traceback). Bad input is what simtune raises as ``ValueError`` (its model, search and
data errors all are), what the system says as ``OSError`` (a missing file, a busy port), a folder another
process is writing (``FolderLockError``), or a full disk, whichever library hit it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer

from simtune.atomic import no_space_error
from simtune.folder_lock import FolderLockError

BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    """End the command with ``error: message``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(BAD_INPUT)


@contextmanager
def one_line_errors(reword: Callable[[str], str] = str, writes_to: str | Path | None = None) -> Iterator[None]:
    """Bad input raised inside becomes ``fail(reword(message))``; anything else keeps its traceback, unless
    the disk filled up: then the line names ``writes_to`` (the folder the command writes), or the folder of
    the file the system names."""
    try:
        yield
    except (ValueError, FileNotFoundError, FolderLockError) as error:
        fail(reword(str(error)))
    except Exception as error:
        full = no_space_error(writes_to or Path.cwd(), error) if writes_to or isinstance(error, OSError) else None
        if full is not None:
            fail(reword(str(full)))
        if isinstance(error, OSError):
            fail(reword(str(error)))
        raise
