"""Whole-or-nothing writes: the target is replaced whole or left as it was."""

import os
import stat

import pytest

from albert_tf.atomic_file import atomic_path
from albert_tf.atomic_file import write_text


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
