"""``simtune images ...`` (and any preset's app): train, evaluate, demo, index, search, serve.

Every command is a function taking the app's ``Preset`` first; ``build_app`` binds the preset to each in the
same way (``bind_preset``), and reports bad input the same way (one ``error:`` line, see
``simtune.command_errors``). Each command imports its heavy packages when it runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from simtune.apps.images.data.preset import IMAGES, Preset
from simtune.command_errors import one_line_errors


def build_app(preset: Preset, help_text: str) -> typer.Typer:
    """A typer app whose commands read and describe collections the way ``preset`` says; ``help_text`` is
    its line in ``simtune --help``."""
    from simtune.apps.images.demo import demo_command
    from simtune.apps.images.run.commands import evaluate_command, train_command
    from simtune.apps.images.service.search_commands import index_command, search_command, serve_command

    app = typer.Typer(help=help_text, no_args_is_help=True, pretty_exceptions_enable=False)
    for name, command in (
        ("train", train_command),
        ("evaluate", evaluate_command),
        ("demo", demo_command),
        ("index", index_command),
        ("search", search_command),
        ("serve", serve_command),
    ):
        app.command(name)(bind_preset(command, preset))
    return app


def bind_preset(command: Callable[..., None], preset: Preset) -> Callable[..., None]:
    """``command`` with ``preset`` bound, as typer reads its signature: the run folder defaults to
    ``runs/<preset>``, the Qdrant collection to the preset's name, ``{noun}`` and ``{layouts}`` in option help
    name the preset's photos and layouts, and bad input ends it with one line (``one_line_errors``; a full disk
    names the run folder) whose suggested commands are this app's."""
    defaults = {"run": Path("runs") / preset.name, "collection": preset.name}
    layouts = ", ".join([r.layout for r in preset.readers] + ["labels.csv", "one folder per class"])
    signature = inspect.signature(command)
    parameters = []
    for parameter in list(signature.parameters.values())[1:]:
        option = copy.copy(parameter.default)
        if parameter.name in defaults:
            option.default = defaults[parameter.name]
        if option.help:
            option.help = option.help.replace("{noun}", preset.noun).replace("{layouts}", layouts)
        parameters.append(parameter.replace(default=option))

    def reword(message: str) -> str:
        return message.replace("simtune images ", f"simtune {preset.name} ")

    @functools.wraps(command)
    def bound(*args: Any, **kwargs: Any) -> None:
        with one_line_errors(reword, writes_to=kwargs.get("run")):
            return command(preset, *args, **kwargs)

    bound.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return bound


app = build_app(IMAGES, "Similar images of your own collection: train, evaluate, index, search, serve.")
