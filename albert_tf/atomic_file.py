"""Whole-or-nothing file writes: a temp file beside the target, then a rename."""

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"  # Hidden: servers and globs skip it.


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it into place on success.

    On an exception the temporary file is removed and `path` is untouched.
    The file gets the permissions `open()` would give (0666 less the umask),
    not `mkstemp`'s private 0600.

    Example:
    ```python
    with atomic_path("runs/model.keras") as tmp:
        model.save(tmp)
    ```
    """
    tmp = _temp_file_beside(path)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        fsync(tmp)  # On disk before the rename, or a power cut may empty it.
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_temp_leftovers(folder, names=None):
    """Deletes the `.tmp-*` files and folders that killed writers left in
    `folder` (only temp files of `names`, if given). Only while no other
    process writes them."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(TEMP_PREFIX) and (
            names is None or name.endswith(tuple(names))
        ):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


def owned_temp_folder(parent, label):
    """A new temp folder in `parent` named with `label`, this process's id and
    host, so `remove_dead_writers_folders` can tell a killed writer's
    leftovers from a live one's. Readable like a `mkdir` folder."""
    tmp = tempfile.mkdtemp(
        prefix=f"{TEMP_PREFIX}{label}-{os.getpid()}@{socket.gethostname()}-",
        dir=parent,
    )
    os.chmod(tmp, open_folder_mode())  # mkdtemp's 0700 would hide it from others.
    return tmp


def remove_dead_writers_folders(parent):
    """Deletes the `owned_temp_folder`s in `parent` whose process is gone
    (killed mid-write: `kill -9`, a crash, a power cut). Folders of live
    processes, or of other hosts (a shared disk), stay."""
    if not os.path.isdir(parent):
        return
    host = socket.gethostname()
    for name in os.listdir(parent):
        match = _OWNED.match(name)
        if not match or match["host"] != host or _alive(int(match["pid"])):
            continue
        path = os.path.join(parent, name)
        shutil.rmtree(path, ignore_errors=True)
        logger.info("Removed %s, left half-written by a stopped process", path)


# `.tmp-LABEL-PID@HOST-RANDOM`; RANDOM is mkdtemp's 8 characters.
_OWNED = re.compile(
    rf"^{re.escape(TEMP_PREFIX)}.+-(?P<pid>\d+)@(?P<host>.+)-[a-z0-9_]{{8}}$"
)


def _alive(pid):
    try:
        os.kill(pid, 0)  # Signal 0: only checks that the process exists.
    except ProcessLookupError:
        return False
    except OSError:  # E.g. another user's process: it exists.
        pass
    return True


def open_folder_mode():
    """What `mkdir` would give a folder (0777 less the umask), for folders
    made by `mkdtemp` (private 0700) that others must read."""
    return 0o777 & ~_umask()


def _umask():
    umask = os.umask(0)  # Reading it means setting it.
    os.umask(umask)
    return umask


def fsync(path):
    """Flushes a file's (or a folder's entries') data to disk, where the OS can."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # E.g. folders on Windows.
        pass
    finally:
        os.close(fd)


def ensure_writable(path):
    """Fails now, naming `path`, if a file could not be written there later.

    For commands that work for minutes before they write. Missing parent
    folders are created for the check and removed again (the write creates
    them), so a command that fails before it writes leaves none behind.
    """
    directory = os.path.dirname(os.path.abspath(path))
    created = []
    while not os.path.exists(directory):
        created.append(directory)
        directory = os.path.dirname(directory)
    os.remove(_temp_file_beside(path))
    for folder in created:  # Innermost first.
        os.rmdir(folder)


def _temp_file_beside(path):
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot write '{path}': it is a directory.")
    if str(path).endswith(("/", os.sep)):  # abspath would drop the slash.
        raise IsADirectoryError(
            f"Cannot write '{path}': it names a folder; give a file name in it"
        )
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        # The suffix keeps the extension, which Keras and matplotlib read.
        fd, tmp = tempfile.mkstemp(
            prefix=TEMP_PREFIX, suffix=os.path.basename(path), dir=directory
        )
    except OSError as e:  # Name the target, not the temp file.
        raise type(e)(e.errno, f"Cannot write '{path}': {e.strerror}") from None
    os.close(fd)
    return tmp


def write_bytes(path, data):
    """Writes `data` to `path` whole, or leaves `path` as it was."""
    write_all([(path, data)])


def write_all(files):
    """Writes each `(path, data)` of `files` whole, or none of them.

    All are written to temp files first, then renamed in the order given, so
    a crash or a full disk never leaves a new file beside an old one.
    """
    with contextlib.ExitStack() as renames:
        for path, data in reversed(files):  # Contexts exit (rename) in reverse.
            tmp = renames.enter_context(atomic_path(path))
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
            except OSError as e:  # E.g. a full disk: name the target.
                raise type(e)(e.errno, f"Cannot write '{path}': {e.strerror}") from None


def write_text(path, text):
    """Writes UTF-8 `text` to `path` whole, or leaves `path` as it was."""
    write_bytes(path, text.encode("utf-8"))
