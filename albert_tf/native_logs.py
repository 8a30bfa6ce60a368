"""Imports TensorFlow without the INFO lines its native libraries print.

Before absl logging is set up, TensorFlow's C++ code writes INFO lines
(oneDNN, CUDA stubs, CPU features) straight to file descriptor 2, whatever
`TF_CPP_MIN_LOG_LEVEL` says, and prints them twice. They would open every
`albert-tf` command's output. Only those lines are dropped: warnings and errors
printed during the import are passed on. `TF_CPP_MIN_LOG_LEVEL=0` keeps them all.
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


def without_import_chatter(text):
    """`text` without the native INFO lines TensorFlow prints at import."""
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not _IMPORT_CHATTER.match(line)
    )


def import_tensorflow_quietly():
    """Imports `tensorflow` and `tensorflow_text` (once per process) with file
    descriptor 2 captured, then writes back all but the INFO lines."""
    # Already imported, or INFO asked for: nothing to keep quiet.
    quiet = "tensorflow" not in sys.modules
    quiet = quiet and os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0"
    if quiet:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # No fd 2 (a daemon).
            quiet = False
    if not quiet:
        import tensorflow_text  # noqa: F401

        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            import tensorflow_text  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            sys.stderr.write(without_import_chatter(text))
            sys.stderr.flush()
