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

from albert_tf.serving import signatures as sig
from albert_tf.serving.servable import RequestError

logger = logging.getLogger(__name__)

_PATH = re.compile(
    r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata|:predict|:classify)?$"
)
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 413,
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


def _from_json(key, values):
    values = _decode_b64(values)
    if isinstance(values, list) and not values:
        raise RequestError(
            "INVALID_ARGUMENT", f"Empty batch: input '{key}' has no rows."
        )
    array = np.asarray(values)
    if array.dtype.kind == "U":
        return np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(array)
    if array.dtype.kind == "S":
        return array.astype(object)
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind == "i":
        return array.astype(np.int32)
    return array


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


class RestServer:
    """Serves a `ModelServer` over HTTP in a background thread."""

    def __init__(self, model_server, host, port, max_body_bytes=4 * 1024 * 1024):
        self._model = model_server
        handler = self._handler_class(model_server, max_body_bytes)
        self._httpd = http.server.ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self):
        """Starts serving; returns the bound port."""
        self._thread.start()
        return self._httpd.server_address[1]

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    @staticmethod
    def _handler_class(model, max_body_bytes):
        class Handler(http.server.BaseHTTPRequestHandler):
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
                match = _PATH.match(self.path)
                if not match:
                    raise RequestError("NOT_FOUND", f"Unknown path '{self.path}'.")
                name, version, verb = match.groups()
                spec = predict_pb2.PredictRequest().model_spec
                spec.name = name
                if version:
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
                    self._reply(_HTTP_STATUS.get(e.code, 500), {"error": e.message})
                except Exception as e:  # A bug here must not drop the connection.
                    logger.exception("REST %s %s failed", method, self.path)
                    self._reply(500, {"error": f"Internal error: {e}"})

            def _body(self):
                length = int(self.headers.get("Content-Length", 0))
                if length > max_body_bytes:
                    raise RequestError(
                        "RESOURCE_EXHAUSTED",
                        f"Request body of {length} bytes is over the "
                        f"{max_body_bytes}-byte limit.",
                    )
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError as e:
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
                    return _predict(model, spec, body)

                self._handle("POST", run)

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
                    "error_code": "UNKNOWN" if s.status.error_message else "OK",
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
    return {
        "model_spec": json_format.MessageToDict(response.model_spec),
        "metadata": {"signature_def": json_format.MessageToDict(signature_map)},
    }


def _classify(model, spec, body):
    examples = body.get("examples")
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise RequestError(
            "INVALID_ARGUMENT", 'Body needs "examples": a list of objects.'
        )
    if "context" in body:
        raise RequestError("INVALID_ARGUMENT", '"context" is not supported.')
    request = classification_pb2.ClassificationRequest()
    request.model_spec.CopyFrom(spec)
    # As in TF Serving, no name means `serving_default`, which is not a
    # Classify signature: clients name `classify`.
    request.model_spec.signature_name = body.get("signature_name", "")
    for example in examples:
        features = request.input.example_list.examples.add().features
        for key, value in example.items():
            features.feature[key].CopyFrom(_feature(key, value))
    response = model.classify(request)
    return {
        "results": [
            [[c.label, c.score] for c in result.classes]
            for result in response.result.classifications
        ]
    }


def _predict(model, spec, body):
    request = predict_pb2.PredictRequest()
    request.model_spec.CopyFrom(spec)
    request.model_spec.signature_name = body.get("signature_name", sig.PREDICT)
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
            servable = model.servable(request.model_spec)
            specs = servable.signature(request.model_spec.signature_name)
            if len(specs) != 1:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    "Instances must be objects naming each input for a "
                    "signature with several inputs.",
                )
            inputs = {next(iter(specs)): rows}
    elif "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, dict):
            inputs = {sig.TEXT: inputs}
    else:
        raise RequestError("INVALID_ARGUMENT", 'Body needs "instances" or "inputs".')
    for key, values in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(_from_json(key, values)))
    response = model.predict(request)
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
        self.url = f"{base_url.rstrip('/')}/v1/models/{model_name}"
        if version is not None:
            self.url += f"/versions/{int(version)}"
        self.timeout = timeout

    def predict(self, texts, pairs=None):
        """Same contract as `ServingClient.predict` (one request, no batching)."""
        if pairs is None:
            body = {"signature_name": sig.PREDICT, "inputs": {sig.TEXT: list(texts)}}
        else:
            body = {
                "signature_name": sig.PREDICT_PAIR,
                "inputs": {sig.TEXT_A: list(texts), sig.TEXT_B: list(pairs)},
            }
        request = urllib.request.Request(
            self.url + ":predict",
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                outputs = json.load(response)["outputs"]
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", errors="replace")
            raise ValueError(
                f"POST {self.url}:predict failed with HTTP {e.code}: {detail}"
            ) from None
        except urllib.error.URLError as e:
            raise ValueError(f"Cannot reach {self.url}: {e.reason}") from None
        return {
            sig.LOGITS: np.asarray(outputs[sig.LOGITS], np.float32),
            sig.PROBABILITIES: np.asarray(outputs[sig.PROBABILITIES], np.float32),
            sig.CLASS_ID: np.asarray(outputs[sig.CLASS_ID], np.int64),
            sig.LABEL: np.asarray(outputs[sig.LABEL], object),
        }
