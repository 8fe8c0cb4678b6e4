"""How every command of the app reports bad input: one ``error: ...`` line on stderr and exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from simtune.apps.images.data.preset import Preset


@contextmanager
def clean_errors(preset: Preset) -> Iterator[None]:
    """Bad input (a missing folder, an unknown layout, a run made for other data) is one line, not a traceback;
    the commands it suggests are this app's."""
    try:
        yield
    except (ValueError, FileNotFoundError) as error:
        message = str(error).replace("simtune images ", f"simtune {preset.name} ")
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
