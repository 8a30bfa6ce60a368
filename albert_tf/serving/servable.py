"""One loaded model version: runs signatures on numpy inputs, replays warmup.

Used by the dev server. Loads the SavedModel with `tf.saved_model.load`
(after importing tensorflow-text, as TF Serving links its ops) and reads the
`SignatureDef`s from `saved_model.pb` for metadata and method names.
"""

import logging
import os

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text  # noqa: F401  Registers the ops of the graph.
from tensorflow.core.protobuf import saved_model_pb2

from albert_tf.serving import signatures as sig
from albert_tf.serving.warmup import read_warmup_file

logger = logging.getLogger(__name__)


class RequestError(Exception):
    """A request the servable cannot run; `code` is a `grpc.StatusCode` name."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Servable:
    """A loaded version of a model.

    Args:
        path: str. The version folder.
        version: int. Its version number.
    """

    def __init__(self, path, version):
        self.path = path
        self.version = version
        saved_model = saved_model_pb2.SavedModel()
        pb = os.path.join(path, "saved_model.pb")
        with open(pb, "rb") as f:
            saved_model.ParseFromString(f.read())  # Corrupt: DATA_LOSS.
        if not saved_model.meta_graphs:  # Empty: a copy still under way?
            raise RequestError("DATA_LOSS", f"{pb} holds no MetaGraph (empty file?)")
        # GetModelMetadata lists them all, `__saved_model_init_op` included,
        # as TF Serving does; requests can name only the others.
        self.all_signature_defs = dict(saved_model.meta_graphs[0].signature_def)
        self.signature_defs = {
            name: s
            for name, s in self.all_signature_defs.items()
            if not name.startswith("__")
        }
        self._loaded = tf.saved_model.load(path)
        self._functions = dict(self._loaded.signatures)
        self.input_specs = {
            name: fn.structured_input_signature[1]
            for name, fn in self._functions.items()
        }

    def signature(self, name, method_name=sig.PREDICT_METHOD):
        """Checks that `name` exists and has `method_name`; returns its specs."""
        name = name or sig.PREDICT
        # TF Serving's statuses and wording (Predict vs Classify/Regress).
        if name not in self._functions:
            if method_name != sig.PREDICT_METHOD:
                raise RequestError(
                    "INVALID_ARGUMENT", f"No signature was found with the name: {name}"
                )
            raise RequestError(
                "FAILED_PRECONDITION", f'Serving signature key "{name}" not found.'
            )
        actual = self.signature_defs[name].method_name
        if method_name != sig.PREDICT_METHOD and actual != method_name:
            kind = (
                "regression" if method_name == sig.REGRESS_METHOD else "classification"
            )
            raise RequestError(
                "INVALID_ARGUMENT",
                f"Expected {kind} signature method_name to be "
                f"{method_name}. Was: {actual}",
            )
        return self.input_specs[name]

    def check_input_names(self, name, keys):
        """Checks that a request names exactly signature `name`'s inputs."""
        specs = self.signature(name)
        if set(keys) != set(specs):
            raise RequestError(
                "INVALID_ARGUMENT",
                f"Signature '{name}' takes inputs {sorted(specs)}; the request "
                f"has {sorted(keys)}.",
            )
        return specs

    def check_inputs(self, name, inputs, max_batch_size=None):
        """Validates numpy inputs against signature `name`; returns the batch size."""
        specs = self.check_input_names(name, inputs)
        sizes = set()
        for key, spec in specs.items():
            value = inputs[key]
            dtype = (
                tf.dtypes.as_dtype(value.dtype) if value.dtype != object else tf.string
            )
            if dtype != spec.dtype:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"Input '{key}' of signature '{name}' must be "
                    f"{spec.dtype.name}; got {dtype.name}.",
                )
            if value.ndim != spec.shape.rank:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"Input '{key}' of signature '{name}' must have rank "
                    f"{spec.shape.rank} (shape {spec.shape}); got shape "
                    f"{list(value.shape)}.",
                )
            sizes.add(value.shape[0])
        if len(sizes) != 1:
            raise RequestError(
                "INVALID_ARGUMENT",
                f"Inputs of signature '{name}' have different batch sizes: "
                f"{ {k: v.shape[0] for k, v in inputs.items()} }.",
            )
        size = sizes.pop()
        if size == 0:
            raise RequestError(
                "INVALID_ARGUMENT", "Empty batch: expected at least one row."
            )
        if max_batch_size and size > max_batch_size:
            raise RequestError(
                "INVALID_ARGUMENT",
                f"Batch size {size} is larger than the maximum batch size "
                f"{max_batch_size}.",
            )
        return size

    def run(self, name, inputs):
        """Runs signature `name` on checked numpy inputs; returns numpy outputs."""
        try:
            outputs = self._functions[name](
                **{key: tf.constant(value) for key, value in inputs.items()}
            )
        except tf.errors.InvalidArgumentError as e:
            raise RequestError("INVALID_ARGUMENT", _first_line(e.message)) from None
        return {key: value.numpy() for key, value in outputs.items()}

    def warmup(self, run_predict, run_classify):
        """Replays `assets.extra/tf_serving_warmup_requests` through the handlers.

        Args:
            run_predict: callable(PredictRequest). Raises on failure.
            run_classify: callable(ClassificationRequest). Raises on failure.

        Returns:
            The number of records replayed.
        """
        path = os.path.join(self.path, "assets.extra", sig.WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        count = 0
        for log in read_warmup_file(path):
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                run_predict(log.predict_log.request, self)
            elif kind == "classify_log":
                run_classify(log.classify_log.request, self)
            else:
                raise ValueError(
                    f"{path}: record {count}: unsupported warmup log '{kind}'."
                )
            count += 1
        return count


def _first_line(message):
    # TF errors wrap the op's message in graph-node context; keep the message.
    boilerplate = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if "assertion failed" in line:
            return line.replace("\\'", "'")  # Assert messages escape quotes.
    for line in lines:
        if not line.startswith(boilerplate):
            return line
    return lines[0] if lines else message


def concat_inputs(parts):
    """Concatenates a list of input dicts along the batch axis."""
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
