"""Applications built on simtune. Each is a ``simtune.apps`` entry point in pyproject.toml (its typer app),
which the core command line mounts as ``simtune NAME``; nothing outside this package imports an app.
"""
