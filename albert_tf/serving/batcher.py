"""Server-side batching of concurrent requests, like TF Serving's batch scheduler.

Requests queue up; a worker takes the first one, waits up to
`batch_timeout_micros` for more (never beyond `max_batch_size` rows), runs them
as one batch and hands each caller its rows back.
"""

import concurrent.futures
import dataclasses
import queue
import threading
import time

from albert_tf.serving.servable import RequestError
from albert_tf.serving.servable import concat_inputs


@dataclasses.dataclass
class BatchingParameters:
    """The fields of TF Serving's `--batching_parameters_file` that we honour."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100

    @classmethod
    def from_file(cls, path):
        """Reads a TF Serving batching parameters file (a text proto)."""
        from albert_tf.serving import batching_file

        with open(path, encoding="utf-8") as f:
            return cls(**batching_file.values(f.read(), path))


@dataclasses.dataclass
class _Task:
    servable: object
    signature: str
    inputs: dict
    size: int
    future: concurrent.futures.Future


class Batcher:
    """Batches `Servable.run` calls of 1-D (string) signatures.

    Args:
        params: `BatchingParameters`.
    """

    def __init__(self, params):
        self.params = params
        self._queue = queue.Queue(
            maxsize=params.max_enqueued_batches * params.max_batch_size
        )
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(params.num_batch_threads)
        ]
        self._pending = None  # A task taken but left for the next batch.
        self.batches_run = 0  # For tests and logs: how many batches ran.
        self._take_lock = threading.Lock()
        for thread in self._threads:
            thread.start()

    def run(self, servable, signature, inputs, size):
        """Runs one request as part of a batch; blocks until its rows are back."""
        task = _Task(servable, signature, inputs, size, concurrent.futures.Future())
        try:
            self._queue.put_nowait(task)
        except queue.Full:
            raise RequestError(
                "UNAVAILABLE", "The batch scheduling queue is full; retry later."
            ) from None
        return task.future.result()

    def _take_batch(self):
        # One worker assembles a batch at a time, so batches fill up.
        with self._take_lock:
            first = self._pending
            self._pending = None
            while first is None:
                if self._stop.is_set():
                    return []
                try:
                    first = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
            batch, rows = [first], first.size
            deadline = time.monotonic() + self.params.batch_timeout_micros / 1e6
            while rows < self.params.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    task = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                same = (
                    task.servable is first.servable
                    and task.signature == first.signature
                )
                if not same or rows + task.size > self.params.max_batch_size:
                    self._pending = task
                    break
                batch.append(task)
                rows += task.size
            return batch

    def _work(self):
        while not self._stop.is_set():
            batch = self._take_batch()
            if batch:
                self._run_batch(batch)

    def _run_batch(self, batch):
        self.batches_run += 1
        first = batch[0]
        try:
            outputs = first.servable.run(
                first.signature, concat_inputs([t.inputs for t in batch])
            )
        except RequestError as e:
            if len(batch) == 1:
                first.future.set_exception(e)
                return
            # One bad request must not fail its neighbours: run each alone.
            for task in batch:
                self._run_batch([task])
            return
        except Exception as e:  # Unexpected: report to every caller.
            for task in batch:
                task.future.set_exception(e)
            return
        start = 0
        for task in batch:
            stop = start + task.size
            task.future.set_result({k: v[start:stop] for k, v in outputs.items()})
            start = stop

    def stop(self):
        """Stops the workers after their current batch; requests still
        queued fail with UNAVAILABLE (their callers would wait forever)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        left = [self._pending] if self._pending else []
        self._pending = None
        while True:
            try:
                left.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for task in left:
            task.future.set_exception(
                RequestError("UNAVAILABLE", "The server is shutting down; retry.")
            )
