"""A gRPC client for a text classifier served by TF Serving (or `albert-tf serve`)."""

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from albert_tf.serving import signatures as sig

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# What each gRPC status usually means for a caller of this client.
_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is the server running and reachable?",
    grpc.StatusCode.DEADLINE_EXCEEDED: "no answer before the deadline; raise `timeout`",
    grpc.StatusCode.NOT_FOUND: "check the model name and version",
    grpc.StatusCode.INVALID_ARGUMENT: "the server rejected the request's inputs",
    grpc.StatusCode.FAILED_PRECONDITION: "check the signature name",
    grpc.StatusCode.RESOURCE_EXHAUSTED: (
        "the message is over a size limit; send fewer or shorter texts "
        "(`batch_size`) or raise the limit"
    ),
    grpc.StatusCode.UNIMPLEMENTED: "the server does not offer this call",
}


class ServingError(ValueError):
    """A failed call to the model server, with its gRPC status code.

    A `ValueError`, so `albert-tf` commands report it as one line.

    Attributes:
        code: `grpc.StatusCode`.
        details: str. The server's message.
    """

    def __init__(self, code, details, target, method, hint=None):
        self.code = code
        self.details = details
        hint = hint or _HINTS.get(code, "")
        super().__init__(
            f"{method} to {target} failed with {code.name}: {details}"
            + (f" ({hint})" if hint else "")
        )


class ServingClient:
    """Client of a served ALBERT text classifier over gRPC.

    Built on `tensorflow-serving-api`'s protos and stubs, so it works with the
    official `tensorflow_model_server` and with `albert-tf serve`. Every call
    has a deadline; long input lists are sent in batches of `batch_size`.

    Args:
        target: str. `"host:port"` of the gRPC endpoint.
        model_name: str. The served model's name.
        timeout: float. Deadline of each call, in seconds.
        version: int. Pin a model version; `None` uses the latest. Each
            call can also name its own.
        batch_size: int. Most texts per request.
        max_message_bytes: int. gRPC send/receive message size limits.
        channel: a `grpc.Channel` to use instead of opening one.

    Example:
    ```python
    from albert_tf.serving.client import ServingClient
    with ServingClient("localhost:8500", "albert") as client:
        client.predict(["A great film.", "Dull."])["label"]
    ```
    """

    def __init__(
        self,
        target,
        model_name,
        timeout=10.0,
        version=None,
        batch_size=32,
        max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
        channel=None,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be at least 1. Received: {batch_size}")
        self.target = target
        self.model_name = model_name
        self.timeout = timeout
        self.version = version
        self.batch_size = batch_size
        self._owns_channel = channel is None
        self._channel = channel or grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
                # Retry a server that is not up yet every second at most, so
                # `wait_until_ready` sees it soon after it starts listening
                # (gRPC's backoff grows to 2 minutes).
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(
            self._channel
        )
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def wait_until_ready(self, seconds):
        """Waits for the server to accept connections.

        TF Serving (and `albert-tf serve`) listen only once the model is
        loaded, so a script that has just started one can wait here.

        Args:
            seconds: float. How long to wait at most.

        Raises:
            ServingError: UNAVAILABLE if it is not reachable in time.
        """
        ready = grpc.channel_ready_future(self._channel)
        try:
            ready.result(timeout=seconds)
        except grpc.FutureTimeoutError:
            ready.cancel()
            raise ServingError(
                grpc.StatusCode.UNAVAILABLE,
                f"not reachable within {seconds:g} s",
                self.target,
                "Connecting",
            ) from None

    def close(self):
        if self._owns_channel:
            self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ServingError(
                e.code(), e.details(), self.target, type(request).__name__
            ) from None

    def _model_spec(self, spec, signature_name=None, version=None):
        spec.name = self.model_name
        version = self.version if version is None else version
        if version is not None:
            spec.version.value = int(version)
        if signature_name:
            spec.signature_name = signature_name

    def _batches(self, texts, pairs):
        texts = _as_bytes(text_list(texts))  # Checked whole: errors name the entry.
        if pairs is not None:
            pairs = _as_bytes(text_list(pairs))
            if len(pairs) != len(texts):
                raise ValueError(
                    f"Got {len(texts)} texts but {len(pairs)} pairs: expected "
                    "one second text per text."
                )
        if not texts:
            raise ValueError("No texts to send: expected at least one.")
        for start in range(0, len(texts), self.batch_size):
            stop = start + self.batch_size
            yield texts[start:stop], None if pairs is None else pairs[start:stop]

    def predict_request(self, texts, pairs=None, version=None):
        """The `PredictRequest` for one batch of texts (or pairs)."""
        request = predict_pb2.PredictRequest()
        if pairs is None:
            self._model_spec(request.model_spec, sig.PREDICT, version)
            inputs = {sig.TEXT: texts}
        else:
            self._model_spec(request.model_spec, sig.PREDICT_PAIR, version)
            inputs = {sig.TEXT_A: texts, sig.TEXT_B: pairs}
        for key, values in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(_as_bytes(values)))
        return request

    def predict(self, texts, pairs=None, version=None):
        """Classifies texts (or sentence pairs) with the `serving_default` /
        `predict_pair` signatures.

        Args:
            texts: str or list of str.
            pairs: list of str, the second text of each pair, or `None`.
            version: int. The model version for this call (e.g. to compare a
                canary with the current one, on a server that loads both);
                `None` uses the client's.
                Lists longer than `batch_size` go in several requests, which
                a version swap on the server can split between versions
                unless one is pinned.

        Returns:
            A dict of numpy arrays: `logits` and `probabilities`
            `[n, num_classes]` float32, `class_id` `[n]` int64, `label` `[n]`
            str.
        """
        parts = []
        for batch, batch_pairs in self._batches(texts, pairs):
            try:
                response = self._call(
                    self._predictions.Predict,
                    self.predict_request(batch, batch_pairs, version),
                )
            except ServingError as e:
                # Pairs go to `predict_pair`, which single-text exports lack.
                no_pairs = e.code == grpc.StatusCode.FAILED_PRECONDITION and (
                    f'"{sig.PREDICT_PAIR}"' in e.details
                )
                if pairs is None or not no_pairs:
                    raise
                raise ServingError(
                    e.code,
                    e.details,
                    self.target,
                    "PredictRequest",
                    hint="the served model takes single texts; send them without pairs",
                ) from None
            parts.append(
                {
                    key: tf.make_ndarray(response.outputs[key])
                    for key in sig.PREDICT_OUTPUTS
                }
            )
        outputs = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        outputs[sig.LABEL] = np.array(
            [label.decode("utf-8") for label in outputs[sig.LABEL]], dtype=object
        )
        return outputs

    def classify(self, texts, pairs=None, version=None):
        """Classifies texts with TF Serving's Classify API (`tf.Example`s in).

        Args:
            texts: str or list of str.
            pairs: list of str, the second text of each pair, or `None`.
            version: int. The model version for this call; `None` uses the
                client's. As with `predict`, pin one for lists longer than
                `batch_size` that must not straddle a version swap.

        Returns:
            A dict: `classes`, a list per text of the class names, and
            `scores`, float32 `[n, num_classes]`.
        """
        classes, scores = [], []
        for batch, batch_pairs in self._batches(texts, pairs):
            request = classification_pb2.ClassificationRequest()
            self._model_spec(request.model_spec, sig.CLASSIFY, version)
            for i, text in enumerate(batch):  # UTF-8 bytes: see `_batches`.
                feature = request.input.example_list.examples.add().features.feature
                feature[sig.EXAMPLE_TEXT].bytes_list.value.append(text)
                if batch_pairs is not None:
                    feature[sig.EXAMPLE_TEXT_PAIR].bytes_list.value.append(
                        batch_pairs[i]
                    )
            response = self._call(self._predictions.Classify, request)
            for result in response.result.classifications:
                classes.append([c.label for c in result.classes])
                scores.append([c.score for c in result.classes])
        return {sig.CLASSES: classes, sig.SCORES: np.asarray(scores, np.float32)}

    def metadata(self, version=None):
        """The served signatures (GetModelMetadata).

        Args:
            version: int. The model version to describe; `None` uses the
                client's.

        Returns:
            A dict `{signature: {"method_name", "inputs", "outputs"}}`; inputs
            and outputs map each key to `(dtype name, shape list)`, `-1` for
            unknown sizes. TF Serving's internal `__saved_model_init_op` is
            left out.
        """
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._model_spec(request.model_spec, version=version)
        request.metadata_field.append("signature_def")
        response = self._call(self._predictions.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)

        def tensors(infos):
            return {
                key: (
                    tf.dtypes.as_dtype(info.dtype).name,
                    [d.size for d in info.tensor_shape.dim],
                )
                for key, info in infos.items()
            }

        return {
            name: {
                "method_name": s.method_name,
                "inputs": tensors(s.inputs),
                "outputs": tensors(s.outputs),
            }
            for name, s in signature_map.signature_def.items()
            if not name.startswith("__")  # Its output has no dtype (DT_INVALID).
        }

    def status(self, version=None):
        """The model's versions and their states (GetModelStatus).

        Args:
            version: int. One version's status only; `None` uses the
                client's (all versions when the client pins none).

        Returns:
            A list of dicts with `version` (int), `state` (e.g. `"AVAILABLE"`),
            `error_code` (e.g. `"OK"`, `"NOT_FOUND"`) and `error` (the error
            message, `""` when none).
        """
        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request.model_spec, version=version)
        response = self._call(self._models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [
            {
                "version": s.version,
                "state": states.Name(s.state),
                "error_code": error_code_name(s.status),
                "error": s.status.error_message,
            }
            for s in response.model_version_status
        ]


def text_list(texts):
    """A text (str or bytes) or a sequence of texts, as a list of texts."""
    return [texts] if isinstance(texts, (str, bytes)) else list(texts)


def error_code_name(status):
    """A TF Serving `StatusProto`'s `error_code` as its name, e.g. `"NOT_FOUND"`."""
    codes = status.DESCRIPTOR.fields_by_name["error_code"].enum_type
    known = codes.values_by_number.get(status.error_code)
    return known.name if known else str(status.error_code)


def _as_bytes(values):
    """UTF-8 bytes of each text; anything else is refused (`bytes(3)` would
    send three NUL bytes)."""
    encoded = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, bytes):
            raise TypeError(
                f"Texts must be str or bytes; entry {i} is a "
                f"{type(value).__name__}: {value!r}"[:200]
            )
        encoded.append(value)
    return encoded
