"""``python -m simtune``: the ``simtune`` command (so a launcher that reruns it, as Lightning's DDP does, finds it)."""

from simtune.cli import main

main()
