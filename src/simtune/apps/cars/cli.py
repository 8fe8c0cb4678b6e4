"""``simtune cars ...``. Each command lives in its own module and imports heavy packages lazily."""

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

# Commands are registered by apps/cars/commands.py (train, evaluate, demo) and
# apps/cars/search_commands.py (index, search, serve).
from simtune.apps.images.run import commands as _commands  # noqa: E402,F401
from simtune.apps.images.service import search_commands as _search_commands  # noqa: E402,F401
