"""Imports TensorFlow without the INFO lines its native libraries print.

Before absl logging is set up, TensorFlow's C++ code writes INFO lines
(oneDNN, CUDA stubs, CPU features) straight to file descriptor 2, whatever
`TF_CPP_MIN_LOG_LEVEL` says, and prints them twice. They would open every
`albert-tf` command's output. Only those lines are dropped: warnings and errors
printed during the import are passed on, after it. `TF_CPP_MIN_LOG_LEVEL=0` keeps
everything as TensorFlow prints it (to see why an import crashes the process).
"""

import os
import re
import sys
import tempfile

_IMPORT_CHATTER = re.compile(
    r"I\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: "  # The CPU-feature INFO's 2nd line.
)


# Where TensorFlow found no CUDA driver, its failing cuInit call says the same
# again at ERROR level. With a driver present, the error is real and stays.
_NO_DRIVER = "Could not find cuda drivers on your machine"
_CUINIT_FAILED = re.compile(r"E\d{4} [\d:.]+ +\d+ \S+:\d+\] failed call to cuInit")


def without_import_chatter(text):
    """`text` without the native INFO lines TensorFlow prints at import."""
    no_driver = _NO_DRIVER in text
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not _IMPORT_CHATTER.match(line)
        and not (no_driver and _CUINIT_FAILED.match(line))
    )


def import_tensorflow_quietly():
    """Imports `tensorflow` and `tensorflow_text` (once per process) with file
    descriptor 2 captured, then writes back all but the INFO lines."""
    # Already imported, INFO asked for, or no stderr (a daemon, pythonw).
    quiet = "tensorflow" not in sys.modules and sys.stderr is not None
    quiet = quiet and os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0"
    if quiet:
        sys.stderr.flush()
        try:
            captured = tempfile.TemporaryFile()
        except OSError:  # No writable temp folder.
            quiet = False
    if quiet:
        try:
            saved = os.dup(2)
        except OSError:  # fd 2 closed.
            captured.close()
            quiet = False
    if not quiet:
        import tensorflow_text  # noqa: F401

        return
    with captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
            import tensorflow_text  # noqa: F401

            # The CUDA probe, which TensorFlow runs at first device use.
            tensorflow.config.list_physical_devices("GPU")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            sys.stderr.write(without_import_chatter(text))
            sys.stderr.flush()
