"""Finds, loads and swaps model versions under a base path, like TF Serving.

Serves the highest integer version folder that holds a `saved_model.pb`.
A new version is loaded and warmed up beside the current one and swapped in
with one reference assignment: requests that already hold the old version
finish on it, so none is dropped.
"""

import logging
import os
import threading

import grpc
import tensorflow as tf
from google.protobuf import message

from albert_tf.serving.servable import RequestError
from albert_tf.serving.servable import Servable

logger = logging.getLogger(__name__)

OK, UNKNOWN, NOT_FOUND, DATA_LOSS = 0, 2, 5, 15  # `tensorflow.error.Code` values.


def _error_code(error):
    """The `tensorflow.error.Code` of a failed load or warmup.

    TensorFlow's errors and failed warmup requests carry theirs (gRPC and
    TensorFlow number their codes alike); an unparsable `saved_model.pb` is
    DATA_LOSS, as TF Serving's loader reports it. Python's SavedModel loader
    raises `FileNotFoundError` for a missing `variables/`: NOT_FOUND (TF
    Serving's C++ loader loads such a version and fails its requests).
    Anything else is UNKNOWN.
    """
    if isinstance(error, tf.errors.OpError):
        return error.error_code
    if isinstance(error, RequestError):
        return grpc.StatusCode[error.code].value[0]
    if isinstance(error, message.DecodeError):
        return DATA_LOSS
    if isinstance(error, FileNotFoundError):
        return NOT_FOUND
    return UNKNOWN


def version_folders(base_path, ready_only=True):
    """`{version: path}` of the integer version folders under `base_path`.

    Args:
        base_path: str. A model base path.
        ready_only: bool. Keep only folders holding `saved_model.pb`; others
            are still being written. Hidden temp folders (`.tmp-*`) and
            non-integer names never count.
    """
    if not os.path.isdir(base_path):
        return {}
    versions = {}
    for name in os.listdir(base_path):
        path = os.path.join(base_path, name)
        if not (name.isdigit() and os.path.isdir(path)):
            continue
        if ready_only and not os.path.isfile(os.path.join(path, "saved_model.pb")):
            continue
        versions[int(name)] = path
    return versions


def _fingerprint(path):
    """Names, sizes and times of a version folder's files: changes as it is copied."""
    files = []
    for root, _, names in os.walk(path):
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:  # Deleted while we looked.
                continue
            files.append(
                (
                    os.path.relpath(os.path.join(root, name), path),
                    stat.st_size,
                    stat.st_mtime_ns,
                )
            )
    return tuple(sorted(files))


class ModelManager:
    """Keeps the latest version of one model loaded.

    Args:
        model_name: str. The name clients use.
        base_path: str. Folder of integer version folders.
        warmup: callable(Servable) or `None`. Run on each new version before
            it takes requests; an exception fails the load.
        poll_seconds: float. How often to look for new versions; 0 disables
            polling (call `poll()` yourself).
    """

    def __init__(self, model_name, base_path, warmup=None, poll_seconds=1.0):
        self.model_name = model_name
        self.base_path = os.path.abspath(base_path)
        self._warmup = warmup
        self._poll_seconds = poll_seconds
        self._current = None
        self._states = {}  # version -> (state name, error code, error message)
        self._failed = {}  # version -> `_fingerprint` of its folder at a failed load
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._said_empty = False

    @property
    def current(self):
        """The serving `Servable`, or `None` before the first load."""
        return self._current

    def get(self, version=None):
        """The servable for `version` (`None`: latest), or `None`."""
        servable = self._current
        if servable is None or (version is not None and servable.version != version):
            return None
        return servable

    def states(self):
        """`{version: (state, error_code, error_message)}`.

        TF Serving's state names; `error_code` is a `tensorflow.error.Code`
        value (0, OK, unless a load failed).
        """
        with self._lock:
            return dict(self._states)

    def poll(self):
        """Loads the highest ready version if it is not the one serving.

        Returns:
            True if a new version was swapped in.
        """
        versions = version_folders(self.base_path)
        empty = not versions and self._current is None
        if empty and not self._said_empty:  # Once, not at every poll.
            logger.warning(
                "No version folders with saved_model.pb in %s", self.base_path
            )
        self._said_empty = empty
        # The highest version not known to fail (a failed one is retried once
        # its files change): with the newest broken, deleting the serving
        # version still rolls back to the one below.
        version = fingerprint = None
        for candidate in sorted(versions, reverse=True):
            fingerprint = _fingerprint(versions[candidate])
            if self._failed.get(candidate) != fingerprint:
                version = candidate
                break
        current = self._current
        if version is None:
            if current is not None and current.version not in versions:
                self._unload()  # Its folder was deleted, as TF Serving does.
            return False
        if current is not None and current.version == version:
            return False
        path = versions[version]
        with self._lock:
            self._states[version] = ("LOADING", OK, "")
        try:
            servable = Servable(path, version)
            if self._warmup is not None:
                self._warmup(servable)
        except Exception as e:  # Any failure keeps the old version serving.
            logger.error(
                "Failed to load %s version %d: %s", self.model_name, version, e
            )
            self._failed[version] = fingerprint
            with self._lock:
                self._states[version] = (
                    "END",
                    _error_code(e),
                    f"{type(e).__name__}: {e}",
                )
            return self.poll()  # The next version down, now this one is known.
        with self._lock:
            self._current = servable
            self._states[version] = ("AVAILABLE", OK, "")
            if current is not None:
                # In-flight requests keep their reference; Python frees it after.
                self._states[current.version] = ("END", OK, "")
        logger.info("Serving %s version %d from %s", self.model_name, version, path)
        return True

    def _unload(self):
        current = self._current
        logger.warning(
            "Version %d of %s was deleted; unloaded it (no version left to serve).",
            current.version,
            self.model_name,
        )
        with self._lock:
            self._current = None
            self._states[current.version] = ("END", OK, "")

    def failures(self):
        """`{version: error}` of the versions that failed to load."""
        with self._lock:
            return {v: e for v, (_, _, e) in self._states.items() if e}

    def start(self):
        """Loads the first version now, then polls in a background thread."""
        self.poll()
        if self._poll_seconds > 0:
            self._thread = threading.Thread(
                target=self._poll_loop, name=f"poll-{self.model_name}", daemon=True
            )
            self._thread.start()

    def _poll_loop(self):
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll()
            except Exception:  # The poller must survive a bad folder.
                logger.exception("Polling %s failed", self.base_path)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
