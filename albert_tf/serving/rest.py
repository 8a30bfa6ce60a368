"""TF Serving's REST API (`/v1/models/NAME[...]`): dev server side and client.

Predict in its columnar (`"inputs"`) and row (`"instances"`) forms, Classify
(`"examples"`), model status and metadata, with TF Serving's `{"b64": ...}`
encoding of bytes.
"""

import base64
import binascii
import http.server
import json
import logging
import re
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import regression_pb2

from albert_tf.serving import signatures as sig
from albert_tf.serving.client import error_code_name
from albert_tf.serving.client import text_list
from albert_tf.serving.servable import RequestError

logger = logging.getLogger(__name__)

_PATH = re.compile(
    r"^/v1/models/([^/:]+)(?:/(versions|labels)/([^/:]+))?"
    r"(/metadata|:predict|:classify|:regress)?$",
    re.IGNORECASE,
)
_MAX_DISCARD_BYTES = 64 * 1024 * 1024  # Beyond this, close without reading.
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,  # As TF Serving maps it.
    "UNAVAILABLE": 503,
}


def _to_json(value):
    if isinstance(value, np.ndarray):
        return [_to_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value.item() if isinstance(value, np.generic) else value


def _decode_b64(value):
    # TF Serving's REST encoding of bytes: {"b64": "<base64>"}.
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise RequestError(
                "INVALID_ARGUMENT",
                f'Expected a value or {{"b64": ...}}; got an object with keys '
                f"{sorted(value)}.",
            )
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError):
            raise RequestError(
                "INVALID_ARGUMENT", f"Invalid base64 in {value!r:.80}."
            ) from None
    return value


_JSON_KINDS = (
    (bool, "Bool"),
    (int, "Number"),
    (float, "Number"),
    (str, "String"),
    (dict, "Object"),
    (list, "Array"),
    (type(None), "Null"),
)
_INT_RANGES = {tf.int32: (-(2**31), 2**31 - 1), tf.int64: (-(2**63), 2**63 - 1)}


def _json_kind(value):
    return next(kind for cls, kind in _JSON_KINDS if isinstance(value, cls))


def _shape(key, value):
    """The shape of nested lists; ragged lists are an error, as in TF Serving."""
    if not isinstance(value, list):
        return []
    shapes = [_shape(key, v) for v in value]
    if any(shape != shapes[0] for shape in shapes):
        raise RequestError(
            "INVALID_ARGUMENT",
            f"Input '{key}': encountered list at unexpected size (rows must "
            "all have the same length).",
        )
    return [len(value)] + (shapes[0] if shapes else [])


def _flatten(value):
    if isinstance(value, list):
        return [leaf for v in value for leaf in _flatten(v)]
    return [value]


def _leaf(key, value, dtype):
    """One JSON value as `dtype`, refused (not coerced) when it is not one."""
    if dtype == tf.string:
        if isinstance(value, bytes):  # Was {"b64": ...}.
            return value
        if isinstance(value, str):
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"Input '{key}': string {value!r:.40} is not valid Unicode.",
                ) from None
    elif dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if isinstance(value, int) and not isinstance(value, bool):
            if low <= value <= high:
                return value
            raise RequestError(
                "INVALID_ARGUMENT",
                f"Input '{key}': {value} does not fit {dtype.name}.",
            )
    elif dtype.is_floating:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    kind = "Bytes" if isinstance(value, bytes) else _json_kind(value)
    raise RequestError(
        "INVALID_ARGUMENT",
        f"Input '{key}': JSON value {json.dumps(value, default=str)[:40]} of type "
        f"{kind} is not of the expected type {dtype.name}.",
    )


def _from_json(key, values, spec):
    """A JSON input as a numpy array of the signature's dtype for `key`."""
    values = _decode_b64(values)
    shape = _shape(key, values)
    if shape and shape[0] == 0:
        raise RequestError(
            "INVALID_ARGUMENT", f"Empty batch: input '{key}' has no rows."
        )
    dtype = spec.dtype
    leaves = [_leaf(key, v, dtype) for v in _flatten(values)]
    numpy_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    array = np.empty(len(leaves), dtype=numpy_dtype)
    array[:] = leaves
    return array.reshape(shape)


def _feature(key, value):
    values = _decode_b64(value if isinstance(value, list) else [value])
    if all(isinstance(v, str | bytes) for v in values):
        encoded = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    raise RequestError(
        "INVALID_ARGUMENT",
        f"Feature '{key}' must be strings, integers or floats; got {value!r:.80}.",
    )


class _CountingHTTPServer(http.server.ThreadingHTTPServer):
    """Counts requests in flight, so a stop can wait for them: handler
    threads are daemons, which the process would kill mid-reply."""

    def __init__(self, address, handler):
        # IPv6 hosts need an IPv6 socket; TCPServer makes an IPv4 one.
        self.address_family = socket.getaddrinfo(
            address[0], address[1], type=socket.SOCK_STREAM
        )[0][0]
        super().__init__(address, handler)
        self._active = 0
        self._idle = threading.Condition()

    def process_request_thread(self, request, client_address):
        with self._idle:
            self._active += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout):
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout)


class RestServer:
    """Serves a `ModelServer` over HTTP in a background thread."""

    def __init__(self, model_server, host, port, max_body_bytes=4 * 1024 * 1024):
        self._model = model_server
        handler = self._handler_class(model_server, max_body_bytes)
        self._httpd = _CountingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self):
        """Starts serving; returns the bound port."""
        self._thread.start()
        return self._httpd.server_address[1]

    def stop(self, grace=5.0):
        """Stops taking requests; lets in-flight ones finish (up to `grace` s)."""
        self._httpd.shutdown()
        self._httpd.wait_idle(grace)
        self._httpd.server_close()
        self._thread.join()

    @staticmethod
    def _handler_class(model, max_body_bytes):
        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 60  # Seconds a silent client may hold its connection.

            def log_message(self, format, *args):  # Quiet: use logging levels.
                pass

            def _reply(self, status, body):
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self):
                path = self.path.split("?", 1)[0]  # TF Serving ignores queries.
                if path.rstrip("/").lower() == "/v1/models":
                    raise RequestError("INVALID_ARGUMENT", "Missing model name.")
                match = _PATH.match(path)
                if not match:
                    raise RequestError("NOT_FOUND", f"Unknown path '{path}'.")
                name, kind, version, verb = match.groups()
                verb = verb and verb.lower()
                spec = predict_pb2.PredictRequest().model_spec
                spec.name = name
                if kind and kind.lower() == "labels":
                    raise RequestError(
                        "INVALID_ARGUMENT",
                        f"Unrecognized servable version label: {version} (the "
                        "dev server has no version labels).",
                    )
                if version is not None:
                    if not version.isdigit() or int(version) >= 2**63:
                        raise RequestError(
                            "INVALID_ARGUMENT", f"Failed to convert version: {version}"
                        )
                    spec.version.value = int(version)
                return spec, verb

            def _handle(self, method, run):
                try:
                    spec, verb = self._route()
                    allowed = "GET" if verb in (None, "/metadata") else "POST"
                    if method != allowed:
                        raise RequestError(
                            "INVALID_ARGUMENT", f"Use {allowed} for {self.path}."
                        )
                    self._reply(200, run(spec, verb))
                except RequestError as e:
                    self.close_connection = True  # The body may be unread.
                    self._reply(_HTTP_STATUS.get(e.code, 500), {"error": e.message})
                except Exception as e:  # A bug here must not drop the connection.
                    logger.exception("REST %s %s failed", method, self.path)
                    self.close_connection = True
                    self._reply(500, {"error": f"Internal error: {e}"})

            def _too_big(self, length, unread=0):
                if length > max_body_bytes:
                    # Read what the client is still sending (within reason), so
                    # it gets the error instead of a broken pipe mid-upload.
                    self._discard(min(unread, _MAX_DISCARD_BYTES))
                    raise RequestError(
                        "RESOURCE_EXHAUSTED",
                        f"Request body of {length} bytes is over the "
                        f"{max_body_bytes}-byte limit (--max-message-bytes).",
                    )

            def _discard(self, size):
                while size > 0:
                    block = self.rfile.read(min(size, 1 << 16))
                    if not block:
                        return
                    size -= len(block)

            def _read_chunked(self):
                data = b""
                while True:
                    line = self.rfile.readline().split(b";")[0].strip()
                    try:
                        size = int(line or b"0", 16)
                    except ValueError:
                        raise RequestError(
                            "INVALID_ARGUMENT", f"Bad chunk size {line[:20]!r}."
                        ) from None
                    if size == 0:
                        self.rfile.readline()  # The empty trailer line.
                        return data
                    self._too_big(len(data) + size, unread=size)
                    data += self.rfile.read(size)
                    self.rfile.readline()  # CRLF after each chunk.

            def _body(self):
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    raw = self._read_chunked()
                else:
                    try:
                        length = int(self.headers.get("Content-Length", 0))
                    except ValueError:
                        length = -1
                    if length < 0:  # read(-1) would wait for the client to close.
                        raise RequestError(
                            "INVALID_ARGUMENT",
                            "Content-Length is not a non-negative number.",
                        )
                    self._too_big(length, unread=length)
                    raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except (ValueError, RecursionError) as e:  # Or nested too deep.
                    raise RequestError(
                        "INVALID_ARGUMENT", f"Body is not JSON: {e}"
                    ) from None
                if not isinstance(body, dict):
                    raise RequestError(
                        "INVALID_ARGUMENT", "Body must be a JSON object."
                    )
                return body

            def do_GET(self):
                def run(spec, verb):
                    if verb == "/metadata":
                        return _metadata(model, spec)
                    return _status(model, spec)

                self._handle("GET", run)

            def do_POST(self):
                def run(spec, verb):
                    body = self._body()
                    if verb == ":classify":
                        return _classify(model, spec, body)
                    if verb == ":regress":
                        return _regress(model, spec, body)
                    return _predict(model, spec, body)

                self._handle("POST", run)

            def do_PUT(self):
                self._handle("PUT", None)

            def do_DELETE(self):
                self._handle("DELETE", None)

            def do_PATCH(self):
                self._handle("PATCH", None)

        return Handler


def _status(model, spec):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.CopyFrom(spec)
    response = model.status(request)
    states = get_model_status_pb2.ModelVersionStatus.State
    return {
        "model_version_status": [
            {
                "version": str(s.version),
                "state": states.Name(s.state),
                "status": {
                    "error_code": error_code_name(s.status),
                    "error_message": s.status.error_message,
                },
            }
            for s in response.model_version_status
        ]
    }


def _metadata(model, spec):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.CopyFrom(spec)
    request.metadata_field.append("signature_def")
    response = model.metadata(request)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    # TF Serving prints proto field names and default values.
    options = dict(
        preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return {
        "model_spec": json_format.MessageToDict(response.model_spec, **options),
        "metadata": {
            "signature_def": json_format.MessageToDict(signature_map, **options)
        },
    }


def _classify(model, spec, body):
    request = _examples_request(classification_pb2.ClassificationRequest(), spec, body)
    response = model.classify(request)
    return {
        "results": [
            [[c.label, c.score] for c in result.classes]
            for result in response.result.classifications
        ]
    }


def _regress(model, spec, body):
    # Refused with TF Serving's message: a classifier has no regression
    # signature (and an unknown model is NOT_FOUND first).
    request = _examples_request(regression_pb2.RegressionRequest(), spec, body)
    model.regress(request)
    raise RequestError("INTERNAL", "unreachable: no regression signature")


def _examples_request(request, spec, body):
    """A Classify or Regress request of `body`'s examples (and context)."""
    examples = body.get("examples")
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise RequestError(
            "INVALID_ARGUMENT", 'Body needs "examples": a list of objects.'
        )
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        raise RequestError("INVALID_ARGUMENT", '"context" must be an object.')
    request.model_spec.CopyFrom(spec)
    # As in TF Serving, no name means `serving_default`, which is not a
    # Classify signature: clients name `classify`.
    request.model_spec.signature_name = _signature_name(body)
    if context is None:
        listed = request.input.example_list
    else:
        listed = request.input.example_list_with_context
        _fill_features(listed.context.features, context)
    for example in examples:
        _fill_features(listed.examples.add().features, example)
    return request


def _fill_features(features, values):
    for key, value in values.items():
        features.feature[key].CopyFrom(_feature(key, value))


def _signature_name(body):
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise RequestError(
            "INVALID_ARGUMENT", "'signature_name' key must be a string value."
        )
    return name


def _only_input(specs, values, what):
    """`{name: values}` for a signature's only input, as TF Serving maps
    values that name no input."""
    if len(specs) != 1:
        raise RequestError(
            "INVALID_ARGUMENT",
            f"{what} naming each input for a signature with several inputs.",
        )
    return {next(iter(specs)): values}


def _predict(model, spec, body):
    request = predict_pb2.PredictRequest()
    request.model_spec.CopyFrom(spec)
    request.model_spec.signature_name = _signature_name(body) or sig.PREDICT
    if "instances" in body and "inputs" in body:
        raise RequestError(
            "INVALID_ARGUMENT",
            "Expecting only one of 'inputs' or 'instances' keys to exist.",
        )
    servable = model.servable(request.model_spec)
    specs = servable.signature(request.model_spec.signature_name)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise RequestError("INVALID_ARGUMENT", '"instances" must be a list.')
        if rows and all(isinstance(r, dict) and set(r) != {"b64"} for r in rows):
            keys = set(rows[0])
            for i, row in enumerate(rows):
                if set(row) != keys:
                    raise RequestError(
                        "INVALID_ARGUMENT",
                        f"Instance {i} has keys {sorted(row)}; instance 0 has "
                        f"{sorted(keys)}.",
                    )
            inputs = {k: [row[k] for row in rows] for k in rows[0]}
        else:
            inputs = _only_input(specs, rows, "Instances must be objects")
    elif "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, dict):
            inputs = _only_input(specs, inputs, '"inputs" must be an object')
    else:
        raise RequestError("INVALID_ARGUMENT", 'Body needs "instances" or "inputs".')
    servable.check_input_names(request.model_spec.signature_name, inputs)
    for key, values in inputs.items():
        array = _from_json(key, values, specs[key])
        request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
    response = model.predict(request, servable)
    outputs = {k: _to_json(tf.make_ndarray(v)) for k, v in response.outputs.items()}
    if "instances" in body:
        count = len(next(iter(outputs.values())))
        return {
            "predictions": [{k: v[i] for k, v in outputs.items()} for i in range(count)]
        }
    return {"outputs": outputs}


class RestClient:
    """Client of TF Serving's REST Predict API for a served text classifier.

    Args:
        base_url: str. E.g. `"http://localhost:8501"`.
        model_name: str. The served model's name.
        timeout: float. Seconds per request.
        version: int or `None` (latest).

    Example:
    ```python
    from albert_tf.serving.rest import RestClient
    RestClient("http://localhost:8501", "albert").predict(["A great film."])
    ```
    """

    def __init__(self, base_url, model_name, timeout=10.0, version=None):
        self.base_url = f"{base_url.rstrip('/')}/v1/models/{model_name}"
        self.version = version
        self.timeout = timeout

    def _url(self, version):
        if version is None:
            return self.base_url
        return f"{self.base_url}/versions/{int(version)}"

    def predict(self, texts, pairs=None, version=None):
        """Same contract as `ServingClient.predict` (one request, no batching).

        Args:
            texts: str or list of str.
            pairs: str or list of str, the second text of each pair, or `None`.
            version: int. The model version for this call; `None` uses the
                client's.
        """
        texts = _json_texts(texts)
        if pairs is None:
            body = {"signature_name": sig.PREDICT, "inputs": {sig.TEXT: texts}}
        else:
            pairs = _json_texts(pairs)
            body = {
                "signature_name": sig.PREDICT_PAIR,
                "inputs": {sig.TEXT_A: texts, sig.TEXT_B: pairs},
            }
        url = self._url(self.version if version is None else version)
        request = urllib.request.Request(
            url + ":predict",
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                outputs = json.load(response)["outputs"]
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", errors="replace")
            raise ValueError(
                f"POST {url}:predict failed with HTTP {e.code}: {detail}"
            ) from None
        except urllib.error.URLError as e:
            raise ValueError(f"Cannot reach {url}: {e.reason}") from None
        return {
            sig.LOGITS: np.asarray(outputs[sig.LOGITS], np.float32),
            sig.PROBABILITIES: np.asarray(outputs[sig.PROBABILITIES], np.float32),
            sig.CLASS_ID: np.asarray(outputs[sig.CLASS_ID], np.int64),
            sig.LABEL: np.asarray(outputs[sig.LABEL], object),
        }


def _json_texts(texts):
    """A text or a list of texts (str or UTF-8 bytes) as a list of str."""
    return [t.decode("utf-8") if isinstance(t, bytes) else t for t in text_list(texts)]
