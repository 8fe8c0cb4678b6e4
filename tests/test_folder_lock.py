"""A folder has one writer at a time; a killed writer never leaves it locked."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import simtune
from simtune.folder_lock import (
    LOCK_FILE,
    RANK_VARIABLES,
    FolderInUseError,
    FolderLockError,
    global_rank_is_zero,
    holder,
    locked_folder,
)

SOURCE_ROOT = Path(simtune.__file__).resolve().parents[1]


def _holding_process(folder: Path, then: str = "time.sleep(120)") -> subprocess.Popen:
    """A python process that takes ``folder``'s lock, prints HELD, then runs ``then``."""
    code = (
        "import sys, time\n"
        "from simtune.folder_lock import locked_folder\n"
        f"with locked_folder({str(folder)!r}):\n"
        "    print('HELD', flush=True)\n"
        f"    {then}\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT))
    process = subprocess.Popen(
        [sys.executable, "-c", code, "train", "--run", str(folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout.readline().strip() == "HELD"
    return process


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_releases_it(tmp_path):
    folder = tmp_path / "run"
    process = _holding_process(folder)
    try:
        with pytest.raises(FolderInUseError) as refused:
            with locked_folder(folder):
                pytest.fail("two writers held the folder at once")
        message = str(refused.value)
        assert f"{folder} is in use by pid {process.pid} on " in message
        assert "-c train --run" in message and "since 20" in message and "\n" not in message
        assert holder(folder).startswith(f"pid {process.pid}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert (folder / LOCK_FILE).is_file()  # left behind by the killed holder: it must not block
    assert holder(folder) is None
    with locked_folder(folder):
        assert holder(folder).startswith(f"pid {os.getpid()} ")
    assert holder(folder) is None


def test_the_lock_is_reentrant_within_a_process_and_released_after_the_outer_block(tmp_path):
    with locked_folder(tmp_path):
        with locked_folder(tmp_path):
            pass
        code = f"from simtune.folder_lock import locked_folder\nwith locked_folder({str(tmp_path)!r}): pass\n"
        env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT))
        outsider = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert "FolderInUseError" in outsider.stderr
    with locked_folder(tmp_path):
        pass


def _lock_in_a_process_with(folder: Path, ranks: dict[str, str]) -> subprocess.CompletedProcess:
    code = f"from simtune.folder_lock import locked_folder\nwith locked_folder({str(folder)!r}): print('WRITING')\n"
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES} | ranks | {"PYTHONPATH": str(SOURCE_ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    "ranks",
    [
        {"LOCAL_RANK": "1", "NODE_RANK": "0"},
        {"LOCAL_RANK": "0", "NODE_RANK": "1"},
        {"RANK": "3"},
        {"SLURM_PROCID": "2"},
    ],
    ids=["lightning-local-rank", "lightning-node-rank", "torchrun", "slurm"],
)
def test_a_distributed_jobs_other_ranks_trust_rank_0s_lock(tmp_path, ranks):
    with locked_folder(tmp_path):  # rank 0 (this process, with no rank set) holds it
        other = _lock_in_a_process_with(tmp_path, ranks)
        assert other.stdout.strip() == "WRITING", other.stderr
        assert holder(tmp_path).startswith(f"pid {os.getpid()} ")  # the other rank took nothing


@pytest.mark.parametrize("ranks", [{"LOCAL_RANK": "0", "NODE_RANK": "0"}, {"RANK": "0", "LOCAL_RANK": "0"}])
def test_rank_0_of_a_distributed_job_takes_the_lock_like_any_writer(tmp_path, ranks):
    with locked_folder(tmp_path):
        rank_zero = _lock_in_a_process_with(tmp_path, ranks)
        assert "FolderInUseError" in rank_zero.stderr and "WRITING" not in rank_zero.stdout


def test_only_rank_0_counts_as_rank_0(monkeypatch):
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert global_rank_is_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "0")
    assert global_rank_is_zero()
    monkeypatch.setenv("NODE_RANK", "2")
    assert not global_rank_is_zero()


def test_a_missing_folder_is_not_created_when_asked_not_to(tmp_path):
    with pytest.raises(FileNotFoundError, match="typo does not exist"):
        with locked_folder(tmp_path / "typo", create=False):
            pass
    assert not (tmp_path / "typo").exists()


def test_waiting_is_not_needed_after_the_holder_finishes(tmp_path):
    process = _holding_process(tmp_path, then="pass")
    process.wait(timeout=60)
    started = time.perf_counter()
    with locked_folder(tmp_path):
        assert time.perf_counter() - started < 1


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    import errno as errnos

    def read_only(*args, **kwargs):
        raise OSError(errnos.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(FolderLockError, match=f"^{tmp_path} cannot be written \\(Read-only file system\\): "):
        with locked_folder(tmp_path):
            pass


def test_a_folder_it_created_is_removed_when_the_block_fails_having_written_nothing(tmp_path):
    with pytest.raises(ValueError):
        with locked_folder(tmp_path / "runs" / "typo"):
            raise ValueError("bad input")
    assert not (tmp_path / "runs").exists()  # nor the parent it made for it


def test_a_failing_block_keeps_what_it_wrote_and_folders_that_were_there(tmp_path):
    with pytest.raises(ValueError):
        with locked_folder(tmp_path / "new"):
            (tmp_path / "new" / "checkpoint").write_text("resumable")
            raise ValueError("interrupted")
    assert (tmp_path / "new" / "checkpoint").is_file()
    (tmp_path / "existing").mkdir()
    with pytest.raises(ValueError):
        with locked_folder(tmp_path / "existing"):
            raise ValueError("bad input")
    assert (tmp_path / "existing").is_dir()
    with locked_folder(tmp_path / "done"):
        pass
    assert (tmp_path / "done").is_dir()  # only a failure removes it


def test_an_inner_failure_leaves_the_folder_to_its_outer_holder(tmp_path):
    with locked_folder(tmp_path / "run"):
        with pytest.raises(ValueError):
            with locked_folder(tmp_path / "run"):
                raise ValueError("inner")
        assert (tmp_path / "run").is_dir()
