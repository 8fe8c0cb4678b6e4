"""index / search / serve commands (issue: Similar cars search)."""

from simtune.apps.cars.cli import app  # noqa: F401
