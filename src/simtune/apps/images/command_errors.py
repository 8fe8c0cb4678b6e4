"""How every command of the app reports bad input: one ``error: ...`` line on stderr and exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from simtune.apps.images.data.preset import Preset
from simtune.atomic import no_space_error
from simtune.folder_lock import FolderLockError


@contextmanager
def clean_errors(preset: Preset, writes_to: Path | None = None) -> Iterator[None]:
    """Bad input (a missing folder, an unknown layout, a run made for other data), a folder another process
    is writing, or a full disk is one line, not a traceback; the commands it suggests are this app's.
    ``writes_to``: the folder the command writes, named when its disk fills up (whichever library wrote)."""
    try:
        yield
    except (ValueError, FileNotFoundError, FolderLockError) as error:
        _fail(str(error), preset)
    except Exception as error:
        full = no_space_error(writes_to or Path.cwd(), error) if writes_to or isinstance(error, OSError) else None
        if full is None:
            raise
        _fail(str(full), preset)


def _fail(message: str, preset: Preset) -> None:
    message = message.replace("simtune images ", f"simtune {preset.name} ")
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1) from None
