"""One way to write atomically: whenever a writer dies, the target holds the old or the new content, and
the next write into the same folder removes what the dead writer left."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import simtune
from simtune import atomic
from simtune.atomic import clean_leftovers, replace_directory, staged_file, write_bytes, write_json, write_text

SOURCE_ROOT = Path(simtune.__file__).resolve().parents[1]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_file_writes_round_trip_with_ordinary_permissions_and_no_leftovers(tmp_path):
    write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01")
    write_text(tmp_path / "a" / "c.txt", "héllo")
    write_json(tmp_path / "a" / "d.json", {"x": [1, 2]})
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a" / "c.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "a" / "d.json").read_text()) == {"x": [1, 2]}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin", "c.txt", "d.json"]
    assert (tmp_path / "a" / "b.bin").stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_a_failing_file_writer_keeps_the_old_file(tmp_path):
    write_text(tmp_path / "f.txt", "old")
    with pytest.raises(RuntimeError, match="writer failed"):
        with staged_file(tmp_path / "f.txt") as staging:
            staging.write_text("half")
            raise RuntimeError("writer failed")
    assert (tmp_path / "f.txt").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_replace_directory_swaps_in_whole_folders_and_a_failure_keeps_the_old(tmp_path):
    for version in ("one", "two"):
        with replace_directory(tmp_path / "folder") as staging:
            (staging / "sub").mkdir()
            (staging / "sub" / "version").write_text(version)
    assert (tmp_path / "folder" / "sub" / "version").read_text() == "two"
    with pytest.raises(RuntimeError, match="writer failed"):
        with replace_directory(tmp_path / "folder") as staging:
            (staging / "partial").write_text("x")
            raise RuntimeError("writer failed")
    assert sorted(p.name for p in (tmp_path / "folder").rglob("*")) == ["sub", "version"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_the_fallback_without_an_atomic_exchange_replaces_too(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda first, second: False)
    for version in ("one", "two"):
        with replace_directory(tmp_path / "folder") as staging:
            (staging / "version").write_text(version)
    assert (tmp_path / "folder" / "version").read_text() == "two" and len(list(tmp_path.iterdir())) == 1


# What a writer killed by SIGKILL at each moment of a folder replace leaves, and what the next write does.
KILL_SCRIPT = """
import os, shutil, signal, sys
from pathlib import Path
from simtune import atomic
target, moment = Path(sys.argv[1]), sys.argv[2]
die = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
if moment == "after_swap":  # the new folder is in place, the old one not yet deleted
    atomic.shutil.rmtree = die
if moment == "between_renames":  # no atomic exchange: the old folder moved aside, the new one not yet in
    atomic._exchange = lambda first, second: False
    real_rename, calls = os.rename, []
    def rename_then_die(source, destination):
        calls.append(source)
        if len(calls) == 2:
            die()
        real_rename(source, destination)
    atomic.os.rename = rename_then_die
with atomic.replace_directory(target) as staging:
    (staging / "version").write_text("new")
    (staging / "big").write_bytes(bytes(1 << 20))
    if moment == "while_writing":
        die()
"""


@pytest.mark.parametrize(
    ("moment", "right_after"), [("while_writing", "old"), ("after_swap", "new"), ("between_renames", None)]
)
def test_a_writer_killed_at_any_moment_leaves_old_or_new_and_the_next_write_cleans_up(tmp_path, moment, right_after):
    target = tmp_path / "folder"
    with replace_directory(target) as staging:
        (staging / "version").write_text("old")
    env = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    result = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(target), moment], env=env, capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".folder.")]
    assert leftovers, "the killed writer should have left its staging (or retired) folder"
    if right_after is not None:
        assert (target / "version").read_text() == right_after
    else:  # the fallback's one gap: the clean-up that starts the next write into the folder puts it back
        assert not target.exists()
        clean_leftovers(tmp_path)
        assert (target / "version").read_text() == "old"
    with replace_directory(target) as staging:
        (staging / "version").write_text("next")
    assert (target / "version").read_text() == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_a_killed_file_writer_leaves_the_old_file_and_the_next_write_cleans_up(tmp_path):
    write_text(tmp_path / "f.json", "old")
    script = (
        "import os, signal, sys\nfrom simtune.atomic import staged_file\n"
        "with staged_file(sys.argv[1]) as staging:\n"
        "    staging.write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "f.json")], env=env, capture_output=True)
    assert result.returncode == -signal.SIGKILL
    assert (tmp_path / "f.json").read_text() == "old" and len(list(tmp_path.iterdir())) == 2
    atomic._scanned_folders.discard(tmp_path.resolve())  # as in a new process
    write_text(tmp_path / "g.json", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json", "g.json"]


def test_the_leftover_rule_spares_live_writers_and_unrelated_names(tmp_path):
    alive = tmp_path / f".model.staging-{os.getpid()}-0123abcd"
    dead = tmp_path / f".model.staging-{_dead_pid()}-0123abcd"
    old_but_alive = tmp_path / f".index.staging-{os.getppid()}-89abcdef"
    unrelated = [tmp_path / ".model.staging-notapid-0123abcd", tmp_path / "model.staging-1-0123abcd", tmp_path / "x"]
    for folder in (alive, dead, old_but_alive, *unrelated):
        folder.mkdir()
    aged = time.time() - atomic.STALE_AFTER_S - 60
    os.utime(old_but_alive, (aged, aged))
    assert sorted(clean_leftovers(tmp_path)) == sorted([dead, old_but_alive])
    assert sorted(tmp_path.iterdir()) == sorted([alive, *unrelated])


def test_a_retired_folder_is_deleted_once_its_target_exists(tmp_path):
    (tmp_path / "index").mkdir()
    retired = tmp_path / f".index.retired-{_dead_pid()}-0123abcd"
    retired.mkdir()
    (retired / "old").write_text("old")
    assert clean_leftovers(tmp_path) == [retired]
    assert [p.name for p in tmp_path.iterdir()] == ["index"] and not any((tmp_path / "index").iterdir())


def test_files_get_the_umask_mode_even_from_writers_that_create_them_private(tmp_path):
    """safetensors creates its files 0o600: a shared model or cache would be unreadable to its group."""
    import torch
    from safetensors.torch import save_file

    old = os.umask(0o002)
    try:
        with staged_file(tmp_path / "weights.safetensors") as staging:
            save_file({"x": torch.zeros(2)}, staging)
        with replace_directory(tmp_path / "model") as staging:
            save_file({"x": torch.zeros(2)}, staging / "model.safetensors")
            (staging / "sub").mkdir()
            save_file({"x": torch.zeros(2)}, staging / "sub" / "part.safetensors")
    finally:
        os.umask(old)
    for path in (tmp_path / "weights.safetensors", tmp_path / "model" / "model.safetensors"):
        assert path.stat().st_mode & 0o777 == 0o664, path
    assert (tmp_path / "model" / "sub" / "part.safetensors").stat().st_mode & 0o777 == 0o664


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("how", ["file", "folder", "writer without errno"])
def test_a_full_disk_is_one_line_naming_the_folder_and_the_old_content_stays(tmp_path, monkeypatch, how):
    write_text(tmp_path / "f.txt", "old")
    with replace_directory(tmp_path / "model") as staging:
        (staging / "w").write_text("old")
    with pytest.raises(atomic.NoSpaceError) as full:
        if how == "file":
            monkeypatch.setattr(os, "replace", _disk_full)
            write_text(tmp_path / "f.txt", "new")
        elif how == "folder":
            with replace_directory(tmp_path / "model") as staging:
                _disk_full()
        else:  # torch.save reports a full disk as RuntimeError("... unexpected pos ..."): the device says why
            monkeypatch.setattr(atomic, "_nearly_full", lambda folder: folder == tmp_path)
            with staged_file(tmp_path / "f.txt") as staging:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert str(full.value) == (
        f"no space left on the device holding {tmp_path}: free some space there and run again "
        "(what was there before is unchanged)"
    )
    assert full.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert (tmp_path / "f.txt").read_text() == "old" and (tmp_path / "model" / "w").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "model"]


def test_other_failures_pass_through_unchanged(tmp_path):
    with pytest.raises(RuntimeError, match="^writer failed$"):
        with staged_file(tmp_path / "f.txt"):
            raise RuntimeError("writer failed")
