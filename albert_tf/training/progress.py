"""Training progress: a Keras progress bar on a terminal, log lines elsewhere.

Keras's `Progbar` redraws one line with backspaces, carriage returns and ANSI
colours even when stdout is a file or a pipe (it treats every POSIX system as
a terminal). In a log file, `kubectl logs` or CI output that makes one ever
longer line of escape codes per epoch, so there the trainer logs a plain line
per update instead.
"""

import logging
import sys
import time

import keras

logger = logging.getLogger(__name__)


def _on_terminal():
    """Whether stdout shows a redrawn bar: a terminal, or a notebook."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules


def progress_display(total_steps, verbose):
    """What shows training progress, with Keras `Progbar`'s `update` method.

    Args:
        total_steps: int. The step the run ends at.
        verbose: int. 0: nothing; 1: a Keras progress bar on a terminal or in
            a notebook, else a log line per update; 2: log lines always.
    """
    if verbose == 0 or (verbose == 1 and _on_terminal()):
        return keras.utils.Progbar(
            total_steps, verbose=verbose, stateful_metrics=["loss", "accuracy", "lr"]
        )
    return ProgressLog(total_steps)


class ProgressLog:
    """One INFO line per update: the step, the values given, the time per step
    and the time left, e.g. `Step 500/2042: loss 0.4044, accuracy 0.8247,
    lr 4.018e-04 (93 ms/step, 2:22 left)`."""

    def __init__(self, total_steps):
        self.total_steps = total_steps
        self._since = None  # (step, time) of the first line: rates leave out tracing.

    def update(self, current, values=None):
        if values is None:  # Keras's bar jumps to a resumed step; lines need not.
            return
        now = time.perf_counter()
        if self._since is None:
            self._since = (current, now)
        shown = ", ".join(f"{name} {_number(value)}" for name, value in values)
        line = f"Step {current}/{self.total_steps}: {shown}"
        steps = current - self._since[0]
        if steps > 0:
            per_step = (now - self._since[1]) / steps
            left = per_step * (self.total_steps - current)
            line += f" ({per_step * 1000:.0f} ms/step, {_duration(left)} left)"
        logger.info("%s", line)


def _number(value):
    return f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.3e}"


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    )
