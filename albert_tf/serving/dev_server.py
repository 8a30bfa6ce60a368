"""A TF-Serving-compatible development server for one exported model.

Implements TF Serving's gRPC `PredictionService` (Predict, Classify,
GetModelMetadata) and `ModelService` (GetModelStatus) with grpcio on top of
an `albert-tf export` base path, plus its REST API (predict, classify,
status, metadata). For
development and tests only: production uses the official
`tensorflow_model_server` / `tensorflow/serving` image.
"""

import errno
import logging
import os
import socket
from concurrent import futures

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
from albert_tf.serving.batcher import Batcher
from albert_tf.serving.batcher import BatchingParameters
from albert_tf.serving.model_manager import ModelManager
from albert_tf.serving.servable import RequestError

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # gRPC's own default.


class ModelServer:
    """Request handling shared by the gRPC services and the REST endpoint.

    Args:
        model_name: str. The name clients use.
        base_path: str. The export base (integer version folders).
        batching: `BatchingParameters`, used with `enable_batching` (its
            `max_batch_size` is then also the largest accepted request;
            without batching, as in TF Serving, requests have no size limit).
        enable_batching: bool. Batch concurrent requests together.
        poll_seconds: float. How often to look for new versions.
    """

    def __init__(
        self,
        model_name,
        base_path,
        batching=None,
        enable_batching=False,
        poll_seconds=1.0,
    ):
        self.model_name = model_name
        self.params = batching or BatchingParameters()
        self._batcher = Batcher(self.params) if enable_batching else None
        self.manager = ModelManager(
            model_name, base_path, warmup=self._warmup, poll_seconds=poll_seconds
        )

    def start(self):
        self.manager.start()
        if self.manager.current is None:
            failures = self.manager.failures()
            if failures:
                raise ValueError(
                    f"No version under '{self.manager.base_path}' loads: "
                    + "; ".join(
                        f"version {v}: {e}" for v, e in sorted(failures.items())
                    )
                )
            raise FileNotFoundError(_no_versions_message(self.manager.base_path))

    def stop(self):
        self.manager.stop()
        if self._batcher is not None:
            self._batcher.stop()

    def _warmup(self, servable):
        count = servable.warmup(self.predict, self.classify)
        logger.info(
            "Replayed %d warmup requests on version %d", count, servable.version
        )

    def servable(self, model_spec):
        """The servable a request's `model_spec` names, or NOT_FOUND."""
        version = model_spec.version.value if model_spec.HasField("version") else None
        if model_spec.name != self.model_name:
            raise RequestError(
                "NOT_FOUND",
                f"Servable not found for request: Latest({model_spec.name}) "
                f"(this server serves '{self.model_name}').",
            )
        if model_spec.version_label:
            raise RequestError(
                "INVALID_ARGUMENT",
                "Version labels are not supported by the dev server.",
            )
        servable = self.manager.get(version)
        if servable is None:  # TF Serving's wording for each kind of request.
            wanted = (
                f"Latest({self.model_name})"
                if version is None
                else f"Specific({self.model_name}, {version})"
            )
            raise RequestError("NOT_FOUND", f"Servable not found for request: {wanted}")
        return servable

    def _run(self, servable, name, inputs):
        limit = self.params.max_batch_size if self._batcher is not None else None
        size = servable.check_inputs(name, inputs, limit)
        batchable = all(v.ndim == 1 for v in inputs.values())
        if self._batcher is not None and batchable:
            return self._batcher.run(servable, name, inputs, size)
        return servable.run(name, inputs)

    def predict(self, request, servable=None):
        """Handles a `PredictRequest`; returns a `PredictResponse`."""
        servable = servable or self.servable(request.model_spec)
        name = request.model_spec.signature_name or sig.PREDICT
        servable.signature(name)
        try:
            for key, proto in request.inputs.items():
                _check_value_count(key, proto)
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        except RequestError:
            raise
        except Exception as e:  # Malformed TensorProto.
            raise RequestError(
                "INVALID_ARGUMENT", f"Malformed input tensor: {e}"
            ) from None
        requested = list(request.output_filter)
        repeated = sorted({key for key in requested if requested.count(key) > 1})
        if repeated:  # TF Serving's check and wording, before any work.
            raise RequestError(
                "INVALID_ARGUMENT", f"duplicate output tensor alias: {repeated[0]}"
            )
        outputs = self._run(servable, name, inputs)
        wanted = requested or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            raise RequestError(
                "INVALID_ARGUMENT",
                f"output_filter names unknown outputs {unknown}; signature "
                f"'{name}' has {sorted(outputs)}.",
            )
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, self.model_name, servable.version, name)
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    def regress(self, request):
        """Handles a `RegressionRequest`: refused as TF Serving refuses it, since
        a classifier exports no regression signature."""
        servable = self.servable(request.model_spec)
        servable.signature(request.model_spec.signature_name, sig.REGRESS_METHOD)
        raise RequestError("INTERNAL", "unreachable: no regression signature")

    def classify(self, request, servable=None):
        """Handles a `ClassificationRequest`; returns a `ClassificationResponse`."""
        servable = servable or self.servable(request.model_spec)
        name = request.model_spec.signature_name or sig.PREDICT
        servable.signature(name, sig.CLASSIFY_METHOD)
        serialized = np.array(_serialized_examples(request.input), object)
        outputs = self._run(servable, name, {sig.CLASSIFY_INPUTS: serialized})
        response = classification_pb2.ClassificationResponse()
        _fill_spec(response.model_spec, self.model_name, servable.version, name)
        for classes, scores in zip(
            outputs[sig.CLASSES], outputs[sig.SCORES], strict=True
        ):
            result = response.result.classifications.add()
            for label, score in zip(classes, scores, strict=True):
                result.classes.add(label=label.decode("utf-8"), score=float(score))
        return response

    def metadata(self, request):
        """Handles a `GetModelMetadataRequest`."""
        servable = self.servable(request.model_spec)
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise RequestError(
                "INVALID_ARGUMENT",
                f"Metadata field(s) {fields} not supported: expected "
                "['signature_def'].",
            )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in servable.all_signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, self.model_name, servable.version)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def status(self, request):
        """Handles a `GetModelStatusRequest`."""
        if request.model_spec.name != self.model_name:
            raise RequestError(
                "NOT_FOUND",
                f"Could not find any versions of model {request.model_spec.name}",
            )
        states = self.manager.states()
        if request.model_spec.HasField("version"):
            version = request.model_spec.version.value
            if version not in states:
                raise RequestError(
                    "NOT_FOUND",
                    f"Could not find version {version} of model {self.model_name}",
                )
            states = {version: states[version]}
        response = get_model_status_pb2.GetModelStatusResponse()
        enum = get_model_status_pb2.ModelVersionStatus.State
        # Newest first, as TF Serving lists them.
        for version, (state, code, error) in sorted(states.items(), reverse=True):
            status = response.model_version_status.add(
                version=version, state=enum.Value(state)
            )
            status.status.error_code = code
            status.status.error_message = error
        return response


def _serialized_examples(model_input):
    """An `Input`'s examples as serialized `tf.Example`s, as TF Serving makes them.

    With a context, each example is the context's bytes followed by its own:
    parsing merges the two, and an example's feature replaces the context's.
    """
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        listed = model_input.example_list_with_context
        context = listed.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in listed.examples]
    else:
        examples = []
    if not examples:
        raise RequestError("INVALID_ARGUMENT", "Input is empty.")
    return examples


def _fill_spec(spec, name, version, signature_name=None):
    spec.name = name
    spec.version.value = version
    if signature_name:
        spec.signature_name = signature_name


def _grpc_method(handler):
    """Turns `RequestError`s into gRPC statuses with their message."""

    def method(self, request, context):
        try:
            return handler(self._server, request)
        except RequestError as e:
            context.abort(getattr(grpc.StatusCode, e.code), e.message)
        except Exception as e:  # Never leave a caller without a status.
            logger.exception("Request failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")

    return method


def _unimplemented(message):
    """A gRPC method answering UNIMPLEMENTED with `message` (the generated
    base method also logs an ERROR traceback)."""

    def method(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    return method


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server):
        self._server = server

    Predict = _grpc_method(ModelServer.predict)
    Classify = _grpc_method(ModelServer.classify)
    Regress = _grpc_method(ModelServer.regress)
    GetModelMetadata = _grpc_method(ModelServer.metadata)
    MultiInference = _unimplemented(
        "albert-tf serve has no MultiInference (tensorflow_model_server has): "
        "send Classify or Predict requests"
    )


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server):
        self._server = server

    GetModelStatus = _grpc_method(ModelServer.status)
    HandleReloadConfigRequest = _unimplemented(
        "albert-tf serve serves the one model of --model-base-path and takes no "
        "config reloads: restart it with other flags, or use "
        "tensorflow_model_server with --model_config_file"
    )


def _no_versions_message(base):
    """Why `base` holds no version to serve, and what to pass instead."""
    base = os.fspath(base)
    if not os.path.exists(base):
        return f"Model base path '{base}' does not exist."
    if os.path.isfile(base):
        return (
            f"Model base path '{base}' is a file; pass the folder `albert-tf "
            "export` wrote (for a .keras model: export it first)."
        )
    if tf.saved_model.contains_saved_model(base):
        return (
            f"'{base}' is a version folder; pass the folder that holds the "
            f"versions, '{os.path.dirname(os.path.abspath(base))}'."
        )
    return (
        f"No loadable version under '{base}' (expected integer folders with "
        "saved_model.pb, e.g. from `albert-tf export`)."
    )


def host_port(host, port):
    """`host:port`, with an IPv6 address in brackets (`[::1]:8500`), as gRPC
    and URLs take it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class DevServer:
    """The gRPC (and optional REST) front of a `ModelServer`.

    Args:
        model_name: str. The name clients use.
        base_path: str. The export base path.
        port: int. gRPC port; 0 picks a free one (see `.port`).
        host: str. Address to bind; `127.0.0.1` keeps it local.
        rest_port: int or `None`. Also serve REST on this port (0: free one).
        batching: `BatchingParameters` (limits; defaults if `None`).
        enable_batching: bool. Batch concurrent requests together.
        max_message_bytes: int. gRPC receive/send message size limit.
        poll_seconds: float. How often to look for new versions.
        max_workers: int. Threads answering gRPC calls.

    Example:
    ```python
    from albert_tf.serving.dev_server import DevServer
    server = DevServer("albert", "export/albert", port=8500).start()
    server.wait()  # Until stop() or SIGTERM handling calls stop().
    ```
    """

    def __init__(
        self,
        model_name,
        base_path,
        port=8500,
        host="127.0.0.1",
        rest_port=None,
        batching=None,
        enable_batching=False,
        max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
        poll_seconds=1.0,
        max_workers=64,
    ):
        self.model = ModelServer(
            model_name, base_path, batching, enable_batching, poll_seconds
        )
        self.host = host.strip("[]")  # `[::1]`, as URLs write IPv6 addresses.
        self._requested_port = port
        self._rest_port = rest_port
        self._max_message_bytes = max_message_bytes
        self._max_workers = max_workers
        self._grpc = None
        self._rest = None
        self.port = None
        self.rest_port = None

    def start(self):
        """Loads the latest version (with warmup), then starts listening."""
        # Like TF Serving, listen only once the model is loaded; but a busy
        # port should not wait for a load to be reported.
        self._check_ports_free()
        try:
            self.model.start()
            self._listen()
        except BaseException:
            self.stop(grace=0)
            raise
        logger.info(
            "Serving '%s' on %s (gRPC)%s",
            self.model.model_name,
            host_port(self.host, self.port),
            f" and :{self.rest_port} (REST)" if self._rest else "",
        )
        return self

    def _check_ports_free(self):
        for kind, port in (("gRPC", self._requested_port), ("REST", self._rest_port)):
            if not port:
                continue  # None (no REST) or 0 (any free port).
            try:
                family, type_, proto, _, address = socket.getaddrinfo(
                    self.host, port, type=socket.SOCK_STREAM
                )[0]
                with socket.socket(family, type_, proto) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(address)
            except OSError as e:
                raise OSError(
                    e.errno,
                    f"Cannot serve {kind} on {host_port(self.host, port)}: "
                    f"{e.strerror}",
                ) from None

    def _listen(self):
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_workers),
            options=[
                ("grpc.max_receive_message_length", self._max_message_bytes),
                ("grpc.max_send_message_length", self._max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self.model), self._grpc
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            _ModelService(self.model), self._grpc
        )
        address = host_port(self.host, self._requested_port)
        try:
            self.port = self._grpc.add_insecure_port(address)
        except RuntimeError:  # Newer grpcio raises where older returned 0.
            self.port = 0
        if self.port == 0:
            raise OSError(
                errno.EADDRINUSE,
                f"Cannot serve gRPC on {address}: the port is in use, or the "
                "address is not one of this machine's",
            )
        self._grpc.start()
        if self._rest_port is not None:
            from albert_tf.serving.rest import RestServer

            try:
                self._rest = RestServer(
                    self.model,
                    self.host,
                    self._rest_port,
                    max_body_bytes=self._max_message_bytes,
                )
            except OSError as e:
                raise type(e)(
                    e.errno,
                    f"Cannot serve REST on {host_port(self.host, self._rest_port)}: "
                    f"{e.strerror}",
                ) from None
            self.rest_port = self._rest.start()

    def wait(self):
        """Blocks until the server stops."""
        self._grpc.wait_for_termination()

    def stop(self, grace=5.0):
        """Stops taking requests, lets in-flight ones finish (up to `grace` s)."""
        if self._rest is not None:
            self._rest.stop(grace)
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
        self.model.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(grace=1.0)


def _check_value_count(key, proto):
    """Refuses a tensor that declares more elements than it holds values:
    `make_ndarray` would repeat the last value to fill the shape, so a few
    bytes could ask for gigabytes."""
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(size < 0 for size in shape):
        raise RequestError(
            "INVALID_ARGUMENT", f"Input '{key}': negative dimension in {shape}"
        )
    declared = int(np.prod(shape, dtype=np.int64))
    if proto.tensor_content:
        item = tf.dtypes.as_dtype(proto.dtype).size
        given = len(proto.tensor_content) // max(item, 1)
    else:
        given = max(
            len(getattr(proto, field))
            for field in (
                "string_val",
                "int_val",
                "int64_val",
                "float_val",
                "double_val",
                "bool_val",
                "half_val",
            )
        )
    if declared > max(given, 1):
        raise RequestError(
            "INVALID_ARGUMENT",
            f"Input '{key}': shape {shape} has {declared} elements but "
            f"{given} values were sent",
        )
