"""Imports TensorFlow without the INFO lines its native libraries print.

Before absl logging is set up, TensorFlow's C++ code writes INFO lines
(oneDNN, CUDA stubs, CPU features) straight to file descriptor 2, whatever
`TF_CPP_MIN_LOG_LEVEL` says, and prints them twice. They would open every
`albert-tf` command's output. Only those lines are dropped: warnings and errors
printed during the import are passed on, after it. Later INFO lines (a TFLite
conversion prints a dozen) are left to TensorFlow's own switch: unless set,
`TF_CPP_MIN_LOG_LEVEL` becomes 1 (warnings and errors only) for this process
and its children. `TF_CPP_MIN_LOG_LEVEL=0` keeps everything as TensorFlow
prints it (to see why an import crashes the process).

`say_onednn_int_notice_quietly` drops, the same way, the ERROR line that
oneDNN builds print once per process when an integer op first runs; it must
run an op to do so, so commands call it once devices are set up.
"""

import contextlib
import os
import re
import sys
import tempfile

_IMPORT_CHATTER = re.compile(
    r"I\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: "  # The CPU-feature INFO's 2nd line.
    # LiteRT, at a model's first run; TF_CPP_MIN_LOG_LEVEL does not reach it.
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"
)


# TensorFlow's oneDNN builds say once per process, at ERROR level, that an
# integer op falls back to TensorFlow's own kernels: normal on any CPU (the
# line names AVX-512 even where the CPU has it) and nothing to act on.
_ONEDNN_INT_NOTICE = re.compile(
    r"E\d{4} [\d:.]+ +\d+ util\.cc:\d+\] oneDNN supports DT_INT\d+ only on "
    r"platforms with AVX-512\. Falling back to the default Eigen-based "
    r"implementation if present\.$"
)

# Where TensorFlow found no CUDA driver, its failing cuInit call says the same
# again at ERROR level. With a driver present, the error is real and stays.
_NO_DRIVER = "Could not find cuda drivers on your machine"
_CUINIT_FAILED = re.compile(r"E\d{4} [\d:.]+ +\d+ \S+:\d+\] failed call to cuInit")


def without_import_chatter(text):
    """`text` without the native INFO lines TensorFlow prints at import, and
    without oneDNN's integer-fallback notice."""
    no_driver = _NO_DRIVER in text
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not _IMPORT_CHATTER.match(line)
        and not _ONEDNN_INT_NOTICE.match(line)
        and not (no_driver and _CUINIT_FAILED.match(line))
    )


def import_tensorflow_quietly():
    """Imports `tensorflow` and `tensorflow_text` (once per process) with file
    descriptor 2 captured, then writes back all but the INFO lines."""
    if "tensorflow" in sys.modules:
        import tensorflow_text  # noqa: F401

        return
    # Unless the user set it; read once, at TensorFlow's first log line.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    with native_info_dropped():
        import tensorflow
        import tensorflow_text  # noqa: F401

        # The CUDA probe, which TensorFlow runs at first device use.
        tensorflow.config.list_physical_devices("GPU")
        # No op may run here: that would start TensorFlow's runtime, after
        # which logical CPU devices (`strategy.num_cpu_devices`) and GPU
        # memory growth can no longer be configured.


def say_onednn_int_notice_quietly():
    """Provokes oneDNN's integer-fallback notice with a tiny op, and drops it:
    the tokenizer's first run would print it. Running an op starts
    TensorFlow's runtime, so call this only once devices are configured (after
    `make_strategy`), never at import."""
    import tensorflow as tf

    # On the CPU, where the tokenizer runs, also on a machine with a GPU.
    with native_info_dropped(), tf.device("/CPU:0"):
        tf.transpose(tf.zeros([1, 1], tf.int64))


@contextlib.contextmanager
def native_info_dropped():
    """Captures file descriptor 2 while the block runs, then writes back all
    but native INFO lines and oneDNN's integer-fallback notice: for native
    code that logs before absl logging is set up (TensorFlow's import,
    tf-text's model builders), which `TF_CPP_MIN_LOG_LEVEL` does not reach, or
    that logs a notice nobody can act on. Passes everything through where
    `TF_CPP_MIN_LOG_LEVEL=0` or there is no stderr (a daemon, pythonw)."""
    quiet = sys.stderr is not None and os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0"
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
        yield
        return
    with captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            sys.stderr.write(without_import_chatter(text))
            sys.stderr.flush()
