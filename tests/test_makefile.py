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


def test_lint_on_a_bare_machine_installs_the_pinned_ruff_alone_then_checks_and_ci_lints_first(tmp_path):
    pin = next(line for line in (ROOT / "pyproject.toml").read_text().splitlines() if '"ruff==' in line)
    version = pin.split('"')[1]
    plan = subprocess.run(
        [MAKE, "-C", str(ROOT), "-n", "lint", f"VENV={tmp_path / 'venv'}"], capture_output=True, text=True, timeout=60
    )
    assert plan.returncode == 0, plan.stderr
    steps = plan.stdout.splitlines()
    install = [step for step in steps if "pip install" in step]
    assert len(install) == 1 and f'"{version}"' in install[0] and ".[" not in install[0]  # ruff, not the project
    assert any("ruff check src tests benchmarks" in step for step in steps)
    assert any("ruff format --check src tests benchmarks" in step for step in steps)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci.index("make lint") < ci.index("make test")


def test_the_install_holds_torch_to_the_documented_pins(tmp_path):
    plan = subprocess.run(
        [MAKE, "-C", str(ROOT), "-n", "install", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plan.returncode == 0, plan.stderr
    assert any("-c constraints.txt" in step and '".[all]"' in step for step in plan.stdout.splitlines())
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line]
    assert {pin.split("==")[0] for pin in pins} >= {"torch", "torchvision"}
