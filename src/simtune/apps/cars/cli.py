"""``simtune cars ...``: the generic image commands with the Stanford Cars preset."""

from simtune.apps.cars.preset import CARS
from simtune.apps.images.cli import build_app

app = build_app(CARS, "Similar cars (the Stanford Cars preset of `simtune images`).")
