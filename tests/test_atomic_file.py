"""Whole-or-nothing writes: the target is replaced whole or left as it was."""

import os
import socket
import stat

import pytest

from albert_tf.atomic_file import atomic_path
from albert_tf.atomic_file import ensure_writable
from albert_tf.atomic_file import owned_temp_folder
from albert_tf.atomic_file import remove_dead_writers_folders
from albert_tf.atomic_file import write_all
from albert_tf.atomic_file import write_text
from tests.helpers import dead_writers_temp_folder


def test_write_replaces_the_file_whole_with_open_permissions(tmp_path):
    path = tmp_path / "sub" / "labels.txt"  # Missing folders are created.
    write_text(path, "negative\n")
    write_text(path, "negative\npositive\n")
    assert path.read_text() == "negative\npositive\n"
    umask = os.umask(0)
    os.umask(umask)
    # As `open()` would make it, not mkstemp's private 0600.
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(path.parent) == ["labels.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as tmp:
            assert tmp.endswith("model.keras")  # Keras reads the extension.
            with open(tmp, "w") as f:
                f.write("half a mod")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_unwritable_targets_are_named_and_leave_nothing(tmp_path):
    folder = tmp_path / "out.tflite"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="Cannot write '.*out.tflite': it is"):
        write_text(folder, "x")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # The error names the target, not a temp file beside it.
    with pytest.raises(OSError, match=r"Cannot write '.*file/sub/a.txt'"):
        ensure_writable(blocker / "sub" / "a.txt")
    assert sorted(os.listdir(tmp_path)) == ["file", "out.tflite"]
    assert os.listdir(folder) == []


def test_ensure_writable_leaves_no_file_and_no_folder(tmp_path):
    path = tmp_path / "a" / "b" / "model.tflite"
    ensure_writable(path)
    assert os.listdir(tmp_path) == []
    (tmp_path / "a").mkdir()
    ensure_writable(path)
    assert os.listdir(tmp_path / "a") == []


def test_write_all_writes_every_file_or_none(tmp_path):
    old = {tmp_path / "model.json": b"old json", tmp_path / "model.tflite": b"old"}
    for path, data in old.items():
        path.write_bytes(data)
    (tmp_path / "a_file").write_bytes(b"")
    unwritable = tmp_path / "a_file" / "labels.txt"  # Its folder is a file.
    new = [(path, b"new " + path.name.encode()) for path in old]
    with pytest.raises(OSError, match="labels.txt"):
        write_all(new + [(unwritable, b"labels")])
    assert {p: p.read_bytes() for p in old} == old  # Nothing replaced.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a_file", "model.json", "model.tflite"]
    )  # No temp files left.
    write_all(new)
    assert [p.read_bytes() for p, _ in new] == [data for _, data in new]


def test_write_all_renames_in_the_order_given(tmp_path, monkeypatch):
    renamed = []
    replace = os.replace

    def recording_replace(src, dst):
        renamed.append(os.path.basename(dst))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    names = ["m.json", "m.labels.txt", "m.tflite"]  # The model last.
    write_all([(tmp_path / name, b"x") for name in names])
    assert renamed == names


def test_only_dead_writers_temp_folders_are_removed(tmp_path, caplog):
    dead = dead_writers_temp_folder(tmp_path, "3")
    assert os.path.basename(dead).startswith(".tmp-3-")
    live = owned_temp_folder(tmp_path, "4")  # This process: still writing.
    assert stat.S_IMODE(os.stat(live).st_mode) == 0o777 & ~_umask()
    dead_pid = os.path.basename(dead).split("-")[2].split("@")[0]
    elsewhere = tmp_path / f".tmp-5-{dead_pid}@not-{socket.gethostname()}-abcd1234"
    other = tmp_path / ".tmp-ckpt-200-x"  # Not this scheme: another owner's.
    for folder in (elsewhere, other):
        folder.mkdir()
    with caplog.at_level("INFO", logger="albert_tf"):
        remove_dead_writers_folders(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(live), elsewhere.name, other.name]
    )
    assert f"Removed {dead}, left half-written by a stopped process" in caplog.text
    remove_dead_writers_folders(tmp_path / "missing")  # Nothing to do.


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_another_users_writer_counts_as_alive(tmp_path, monkeypatch):
    dead = dead_writers_temp_folder(tmp_path, "3")

    def not_permitted(pid, signum):  # Another user's process: it exists.
        raise PermissionError

    monkeypatch.setattr(os, "kill", not_permitted)
    remove_dead_writers_folders(tmp_path)
    assert os.path.isdir(dead)


def test_a_path_naming_a_folder_is_refused_before_the_work(tmp_path):
    from albert_tf.atomic_file import ensure_writable

    # Not yet a folder, but meant as one: refused now, not after the work.
    with pytest.raises(IsADirectoryError, match="names a folder; give a file name"):
        ensure_writable(str(tmp_path / "newdir") + "/")
    assert not (tmp_path / "newdir").exists()
