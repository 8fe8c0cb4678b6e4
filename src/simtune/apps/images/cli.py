"""``simtune images ...`` (and any preset's app): train, evaluate, demo, index, search, serve.

Each command imports its heavy packages when it runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import typer

from simtune.apps.images.data.preset import IMAGES, Preset


def build_app(preset: Preset) -> typer.Typer:
    """A typer app whose commands read and describe collections the way ``preset`` says."""
    from simtune.apps.images.demo import add_demo_command
    from simtune.apps.images.run.commands import add_run_commands
    from simtune.apps.images.service.search_commands import add_service_commands

    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    add_run_commands(app, preset)
    add_demo_command(app, preset)
    add_service_commands(app, preset)
    return app


app = build_app(IMAGES)
