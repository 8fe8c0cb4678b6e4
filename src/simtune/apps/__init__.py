"""Applications built on simtune. The core command line mounts each one listed here as ``simtune NAME``.

Nothing outside this package imports an app; adding one is one line in ``APPS``.
"""

# name -> (module:attribute of its typer app, one-line help)
APPS: dict[str, tuple[str, str]] = {
    "images": (
        "simtune.apps.images.cli:app",
        "Similar images of your own collection: train, evaluate, index, search, serve.",
    ),
    "cars": ("simtune.apps.cars.cli:app", "Similar cars (the Stanford Cars preset of `simtune images`)."),
}
