"""The one atomic-write module: outputs never replace inputs, devices, directories, modes, stale temporaries."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from poisonguard import _io
from poisonguard._io import atomic_write_bytes, atomic_write_table, check_outputs
from poisonguard.errors import InputError


# ------------------------------------------------------------- item 1: outputs vs inputs
def test_output_that_is_an_input_is_refused_naming_both(tmp_path):
    data = tmp_path / "w.csv"
    data.write_text("a\n1\n")
    with pytest.raises(InputError, match=r"--out and DATA are the same file .*w\.csv"):
        check_outputs({"--out": data}, {"DATA": data})
    # another spelling of the same path, a symlink and a hard link are the same file too
    (tmp_path / "sub").mkdir()
    for alias in (tmp_path / "sub" / ".." / "w.csv", tmp_path / "link.csv", tmp_path / "hard.csv"):
        if alias.name == "link.csv":
            alias.symlink_to(data)
        elif alias.name == "hard.csv":
            os.link(data, alias)
        with pytest.raises(InputError, match="same file"):
            check_outputs({"--scores": alias}, {"DATA": data})
    assert data.read_text() == "a\n1\n"


def test_two_outputs_on_one_path_are_refused_even_before_they_exist(tmp_path):
    with pytest.raises(InputError, match=r"--scores and --out are the same file"):
        check_outputs({"--out": tmp_path / "x.csv", "--scores": tmp_path / "." / "x.csv"}, {})
    check_outputs({"--out": tmp_path / "x.csv", "--scores": tmp_path / "y.csv"}, {"DATA": tmp_path / "z.csv"})


def test_a_device_may_take_several_outputs(null_device):
    check_outputs({"--out": null_device, "--scores": null_device})


def test_output_inside_an_input_directory_is_refused(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    with pytest.raises(InputError, match=r"--out .* is inside MODEL_DIR"):
        check_outputs({"--out": model / "weights.npz"}, input_dirs={"MODEL_DIR": model})
    check_outputs({"--out": tmp_path / "pred.csv"}, input_dirs={"MODEL_DIR": model})


# ------------------------------------------------------------- item 2: non-regular targets
@pytest.fixture
def null_device(tmp_path) -> Path:
    """A private node of the null device: a regression must not replace the machine's /dev/null."""
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        pytest.skip("creating a device node needs root")
    return node


def test_char_device_is_written_through_not_replaced(null_device):
    before = os.stat(null_device)
    assert atomic_write_bytes(b"hello\n", null_device) == null_device
    after = os.stat(null_device)
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino
    assert [p.name for p in null_device.parent.iterdir()] == ["null"]  # no temporary left beside it


def test_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write_bytes(b"a,b\n1,2\n", fifo)
    reader.join(timeout=10)
    assert got == [b"a,b\n1,2\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_directory_and_socket_targets_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"cannot write .*: it is a directory; give a file path"):
        atomic_write_table(pd.DataFrame({"a": [1]}), tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="cannot write"):  # a file where a folder should be
        atomic_write_bytes(b"x", tmp_path / "afile" / "out.csv")


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_follow_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        p = atomic_write_bytes(b"x", tmp_path / "out.csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(p).st_mode) == expected


def test_an_existing_file_keeps_its_mode(tmp_path):
    p = tmp_path / "out.csv"
    p.write_text("old")
    p.chmod(0o640)
    atomic_write_bytes(b"new", p)
    assert p.read_bytes() == b"new" and stat.S_IMODE(p.stat().st_mode) == 0o640


def test_symlinked_output_replaces_the_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    atomic_write_bytes(b"new", link)
    assert link.is_symlink() and target.read_bytes() == b"new"


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".out.csv.{dead}.deadbeef{_io._TMP_SUFFIX}"
    live = tmp_path / f".out.csv.{os.getppid()}.cafe{_io._TMP_SUFFIX}"  # a running writer's file stays
    other = tmp_path / f".other.csv.{dead}.beef{_io._TMP_SUFFIX}"  # another output's temporaries are not ours
    for p in (stale, live, other):
        p.write_text("partial")
    atomic_write_bytes(b"x", tmp_path / "out.csv")
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "out.csv"])


def test_killed_writer_leaves_an_identifiable_temporary(tmp_path):
    """A writer killed mid-write leaves a temporary named after its pid; the next write removes it."""
    code = (
        "import os, signal, sys\n"
        "from poisonguard import _io\n"
        "real = _io.os.replace\n"
        "def die(a, b): os.kill(os.getpid(), signal.SIGKILL)\n"
        "_io.os.replace = die\n"
        f"_io.atomic_write_bytes(b'x' * 1000, {str(tmp_path / 'out.csv')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".out.csv.") and left[0].endswith(_io._TMP_SUFFIX)
    atomic_write_bytes(b"y", tmp_path / "out.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
