"""Stopping a run cleanly on Ctrl-C or SIGTERM, after checkpointing a step."""

import logging
import signal
import threading

import tensorflow as tf

logger = logging.getLogger(__name__)


class TrainingTerminated(KeyboardInterrupt):
    """`Trainer.train` stopped on SIGTERM, after checkpointing its last step.

    A `KeyboardInterrupt`, as Ctrl-C's stop is, so code that handles one
    handles both; the CLI exits with `exit_status` for it.
    """

    what = "terminated"
    exit_status = 128 + signal.SIGTERM


class DeferredStop:
    """Holds Ctrl-C and SIGTERM until the current step ends, to checkpoint it.

    Preemptible VMs and Kubernetes send SIGTERM before killing a process. A
    second Ctrl-C interrupts at once. Outside the main thread (where signal
    handlers cannot be set) both behave as usual, and a signal the process
    inherited as ignored stays ignored.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT:  # A second Ctrl-C: at once.
            raise KeyboardInterrupt
        # A repeated SIGTERM (some entrypoints forward it twice) changes nothing.

    def requests(self):
        """This process's [Ctrl-C, SIGTERM] requests, for the train step."""
        return tf.constant(
            [self.signum == signal.SIGINT, self.signum == signal.SIGTERM], tf.float32
        )

    def raise_after_checkpoint(self, step, terminated_anywhere, directory):
        signum = self.signum
        if signum is None:  # Another worker's signal.
            signum = signal.SIGTERM if terminated_anywhere else signal.SIGINT
            logger.info(
                "Stopped at step %d because another worker got %s: saved a checkpoint",
                step,
                "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C",
            )
        else:
            what = "Terminated" if signum == signal.SIGTERM else "Interrupted"
            logger.info("%s at step %d: saved a checkpoint", what, step)
        message = (
            f"stopped after step {step}, checkpointed in {directory}; train again "
            "with the same config and output directory to resume"
        )
        if signum == signal.SIGTERM:
            raise TrainingTerminated(message)
        raise KeyboardInterrupt(message)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self._SIGNALS:
                # Ignored by the parent (a script's `cmd &` ignores Ctrl-C):
                # it stays ignored, as Python itself leaves it.
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
