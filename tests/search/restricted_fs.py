"""Run a command where a folder is read-only or a disk is full, for real: a private mount namespace with a
read-only bind mount or a tiny tmpfs (root: plain ``unshare --mount``; anyone else: a user namespace that
maps them to root inside, or, for read-only, the folder's write permissions taken away)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import simtune

ENV = {**os.environ, "PYTHONPATH": str(Path(simtune.__file__).parents[1])}


def _namespace() -> list[str]:
    return ["unshare", "--mount", "--propagation", "private"] + ([] if os.geteuid() == 0 else ["--map-root-user"])


def run_python(
    script: str,
    *args: str,
    read_only: Path | None = None,
    full_tmpfs: Path | None = None,
    env=None,
    background: bool = False,
):
    """Runs ``python -c script args`` with ``read_only`` mounted read-only and/or a 64 KiB tmpfs at
    ``full_tmpfs`` with 8 KiB left (``tempfile`` skips a temporary folder where it cannot write a few bytes);
    returns the ``CompletedProcess`` (``background``: the running ``Popen``, its stdout a text pipe)."""
    python = [sys.executable, "-c", script, *args]
    env = {**ENV, **(env or {})}
    if background:
        return subprocess.Popen(python, env=env, stdout=subprocess.PIPE, text=True)
    if read_only is None and full_tmpfs is None:
        return subprocess.run(python, env=env, capture_output=True, text=True, timeout=300)
    steps = []
    if read_only is not None:
        folder = shlex.quote(str(read_only))
        steps.append(f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder}")
    if full_tmpfs is not None:
        folder = shlex.quote(str(full_tmpfs))
        steps.append(f"mount -t tmpfs -o size=64k tmpfs {folder} && head -c 57344 /dev/zero > {folder}/filler")
    shell = " && ".join(steps) + ' && exec "$@"'
    return subprocess.run(
        [*_namespace(), "sh", "-c", shell, "sh", *python], env=env, capture_output=True, text=True, timeout=300
    )
