"""Progress: a Keras progress bar on a terminal, log lines elsewhere.

Keras's `Progbar` redraws one line with backspaces, carriage returns and ANSI
colours even when stdout is a file or a pipe (it treats every POSIX system as
a terminal). In a log file, `kubectl logs` or CI output that makes one ever
longer line of escape codes per epoch, so there the trainer logs a plain line
per update instead. `evaluate` and `predict` log lines (stdout holds their
results).
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
    """What shows training progress: `update(current, values)` as Keras's
    `Progbar` takes it, and `end_line()` before other output.

    Args:
        total_steps: int. The step the run ends at.
        verbose: int. 0: nothing; 1: a Keras progress bar on a terminal or in
            a notebook, else a log line per update; 2: log lines always.
    """
    if verbose == 0 or (verbose == 1 and _on_terminal()):
        return TerminalProgbar(
            total_steps, verbose=verbose, stateful_metrics=["loss", "accuracy", "lr"]
        )
    return ProgressLog(total_steps)


class TerminalProgbar(keras.utils.Progbar):
    """Keras's progress bar, plus `end_line()`: the bar stays on its line
    between updates, so a log line printed then would continue it."""

    _mid_line = False

    def update(self, current, values=None, finalize=None):
        super().update(current, values, finalize)
        # Keras ends the line itself at the last step.
        self._mid_line = self.verbose == 1 and current < self.target

    def end_line(self):
        """Ends the bar's line, if it is mid-line: the next update draws the
        bar again below whatever is printed in between."""
        if self._mid_line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._mid_line = False


class ProgressLog:
    """INFO lines of progress: the count, the values given, the time per unit
    and the time left, e.g. `Step 500/2042: loss 0.4044, accuracy 0.8247,
    lr 4.018e-04 (93 ms/step, 2:22 left)`.

    Args:
        total: int. The count at the end.
        what: str. What is counted, as the line starts with it.
        unit: str. One of what is counted, for the rate.
        every_s: float. At most one line this often; the last count gets a
            line only after earlier ones (a short job logs nothing).
    """

    def __init__(self, total, what="Step", unit="step", every_s=0.0):
        self.total = total
        self.what = what
        self.unit = unit
        self.every_s = every_s
        self._since = None  # (count, time) of the first update: no tracing.
        self._last_line = None

    def update(self, current, values=None):
        if values is None:  # Keras's bar jumps to a resumed step; lines need not.
            return
        now = time.perf_counter()
        if self._since is None:
            self._since = (current, now)
            self._last_line = now
        due = now - self._last_line >= self.every_s
        if current >= self.total:
            due = due or self._last_line != self._since[1]
        if not due:
            return
        self._last_line = now
        line = f"{self.what} {current}/{self.total}"
        if values:
            line += ": " + ", ".join(f"{name} {_number(v)}" for name, v in values)
        done = current - self._since[0]
        if done > 0:
            per_unit = (now - self._since[1]) / done
            left = per_unit * (self.total - current)
            line += f" ({_rate(per_unit)}/{self.unit}, {_duration(left)} left)"
        logger.info("%s", line)

    def end_line(self):
        """Nothing to end: each update is a whole line."""


def _rate(seconds):
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1e3:.0f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"


def _number(value):
    return f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.3e}"


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    )
