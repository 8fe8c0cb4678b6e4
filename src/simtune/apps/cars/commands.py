"""train / evaluate / demo commands (issue: Similar cars)."""

from simtune.apps.cars.cli import app  # noqa: F401
