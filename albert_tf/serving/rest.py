"""TF Serving's REST API (`/v1/models/NAME[:predict]`): dev server side and client.

Only the Predict call in its columnar (`"inputs"`) and row (`"instances"`)
forms, plus the model status GET, which is what most REST users call.
"""

import http.server
import json
import re
import threading
import urllib.error
import urllib.request

import numpy as np
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import predict_pb2

from albert_tf.serving import signatures as sig
from albert_tf.serving.servable import RequestError

_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(:predict)?$")
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


def _from_json(values):
    array = np.asarray(values)
    if array.dtype.kind == "U":
        return np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(array)
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind == "i":
        return array.astype(np.int32)
    return array


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
                request = predict_pb2.PredictRequest()
                request.model_spec.name = name
                if version:
                    request.model_spec.version.value = int(version)
                return request, verb

            def do_GET(self):
                try:
                    request, verb = self._route()
                    if verb:
                        raise RequestError("INVALID_ARGUMENT", "Use POST for :predict.")
                    status_request = get_model_status_pb2.GetModelStatusRequest()
                    status_request.model_spec.CopyFrom(request.model_spec)
                    response = model.status(status_request)
                    states = get_model_status_pb2.ModelVersionStatus.State
                    self._reply(
                        200,
                        {
                            "model_version_status": [
                                {
                                    "version": str(s.version),
                                    "state": states.Name(s.state),
                                    "status": {
                                        "error_code": "OK"
                                        if not s.status.error_message
                                        else "UNKNOWN",
                                        "error_message": s.status.error_message,
                                    },
                                }
                                for s in response.model_version_status
                            ]
                        },
                    )
                except RequestError as e:
                    self._reply(_HTTP_STATUS.get(e.code, 500), {"error": e.message})

            def do_POST(self):
                try:
                    request, verb = self._route()
                    if verb != ":predict":
                        raise RequestError(
                            "INVALID_ARGUMENT", "Only :predict is supported."
                        )
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
                    self._reply(200, _predict(model, request, body))
                except RequestError as e:
                    self._reply(_HTTP_STATUS.get(e.code, 500), {"error": e.message})

        return Handler


def _predict(model, request, body):
    import tensorflow as tf

    request.model_spec.signature_name = body.get("signature_name", sig.PREDICT)
    if "instances" in body:
        rows = body["instances"]
        if rows and isinstance(rows[0], dict):
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
        request.inputs[key].CopyFrom(tf.make_tensor_proto(_from_json(values)))
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
