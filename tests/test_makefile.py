"""`make test` on a bare machine: it installs the browser the tests drive (as root, with apt-get), or stops
before anything else runs, naming the one command to run."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")


@pytest.fixture
def machine(tmp_path):
    """A PATH of fakes: ``id`` answers the uid in ``uid``; ``apt-get`` logs its arguments and, on
    ``install``, creates the two browser executables at the paths the Makefile is pointed to."""
    bin_dir, browser = tmp_path / "bin", tmp_path / "browser"
    bin_dir.mkdir()
    browser.mkdir()
    (tmp_path / "uid").write_text("0")
    _script(bin_dir / "id", f"{shutil.which('cat')} {tmp_path / 'uid'}")
    _script(
        bin_dir / "apt-get",
        f'echo "$DEBIAN_FRONTEND $*" >> {tmp_path / "apt.log"}\n'
        f'case "$*" in *install*) for f in chromium chromedriver; do '
        f'printf "#!/bin/sh\\n" > {browser}/$f; {shutil.which("chmod")} +x {browser}/$f; done;; esac',
    )
    return tmp_path


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _make(machine: Path, *targets: str, with_apt: bool = True) -> subprocess.CompletedProcess:
    bin_dir = machine / "bin"
    if not with_apt:
        (bin_dir / "apt-get").unlink()
    variables = [
        f"CHROMIUM={machine / 'browser' / 'chromium'}",
        f"CHROMEDRIVER={machine / 'browser' / 'chromedriver'}",
        f"VENV={machine / 'venv'}",
    ]
    env = {"PATH": str(bin_dir), "HOME": str(machine)}  # no /usr/bin: only the fakes and shell built-ins
    return subprocess.run(
        [MAKE, "-C", str(ROOT), *targets, *variables], env=env, capture_output=True, text=True, timeout=60
    )


def test_an_installed_browser_is_left_alone(machine):
    _make(machine, "browser")  # installs it
    (machine / "apt.log").unlink()
    result = _make(machine, "browser")
    assert result.returncode == 0, result.stderr
    assert not (machine / "apt.log").exists()


def test_as_root_with_apt_get_the_browser_is_installed(machine):
    result = _make(machine, "browser")
    assert result.returncode == 0, result.stderr
    assert (machine / "apt.log").read_text().splitlines() == [
        "noninteractive update -qq",
        "noninteractive install -y -qq chromium chromium-driver",
    ]
    assert os.access(machine / "browser" / "chromedriver", os.X_OK)


@pytest.mark.parametrize("situation", ["not root", "no apt-get"])
def test_elsewhere_make_test_stops_before_anything_runs_naming_the_command(machine, situation):
    if situation == "not root":
        (machine / "uid").write_text("1000")
    result = _make(machine, "test", with_apt=situation != "no apt-get")
    assert result.returncode != 0
    assert "sudo apt-get install -y chromium chromium-driver" in result.stderr
    assert not (machine / "apt.log").exists() and not (machine / "venv").exists()  # nothing installed
    assert "-m pytest" not in result.stdout + result.stderr


def test_ci_runs_exactly_the_readme_test_command():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == "make test" and not any("apt-get" in line for line in lines)
