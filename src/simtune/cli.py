"""The ``simtune`` command line. Subcommands import their heavy dependencies only when they run."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import typer

import simtune
from simtune.command_errors import fail, one_line_errors

app = typer.Typer(
    help="simtune: similarity learning — tune embedding models, evaluate retrieval, search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"simtune {simtune.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """simtune command line."""
    _plain_output()


def _plain_output() -> None:
    """What a command prints is its own: Lightning's info lines (the accelerator summary, tips advertising its
    cloud products) are left out, and a warning that matters is one line, ``warning: ...``, without the
    source line Python adds."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)  # Lightning resets its top loggers on import, not these
    warnings.showwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=file or sys.stderr)


@app.command("export-onnx")
def export_onnx_command(
    model_dir: Path = typer.Argument(..., help="A saved SimilarityModel folder."),
    output: Path = typer.Argument(..., help="Where to write the .onnx file."),
    image_size: int | None = typer.Option(None, min=1, help="Side of the square input; default: the encoders' own."),
    trust: list[str] = typer.Option(
        [],
        "--trust",
        metavar="MODULE",
        help="A module (e.g. my_pkg.encoders) whose classes the model may use; it is imported, so name only code "
        "you trust. Without it only simtune's built-in classes load.",
    ),
) -> None:
    """Export a saved servable model to ONNX (checked against eager outputs in onnxruntime)."""
    import importlib

    from simtune.models import SimilarityModel, UntrustedClassError
    from simtune.models.onnx_export import export_onnx

    try:
        trusted = [importlib.import_module(name) for name in trust]
    except ImportError as error:
        fail(f"--trust {error.name or ''}: cannot import it ({error})")
    with one_line_errors():
        try:
            model = SimilarityModel.load(model_dir, trusted_classes=trusted)
        except UntrustedClassError as error:
            fail(f"{error}; on this command line: --trust {error.class_path.partition(':')[0]}")
        max_diff = export_onnx(model, output, image_size=image_size)
    typer.echo(f"wrote {output} (max abs diff vs eager: {max_diff:.2e})")


APPS_GROUP = "simtune.apps"


def _add_apps() -> None:
    """Mount every application installed as a ``simtune.apps`` entry point (pyproject.toml) as ``simtune NAME``:
    the core imports none of them by name, and a package of its own can add one."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=APPS_GROUP), key=lambda entry: entry.name):
        app.add_typer(entry.load(), name=entry.name)


_add_apps()


def main() -> None:
    app()
