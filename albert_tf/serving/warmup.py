"""TF Serving's warmup file: `PredictionLog` records replayed at model load.

Written by the exporter into `assets.extra/tf_serving_warmup_requests`, read
back by the dev server, so the first real request does not pay for graph
optimisation.
"""

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from albert_tf.serving import signatures as sig

MAX_WARMUP_RECORDS = 1000  # TF Serving's limit.
WARMUP_TEXTS = (
    "A warm, funny and moving film.",
    "Dull and far too long.",
)


def _tensor(values):
    return tf.make_tensor_proto(np.asarray(values, dtype=object))


def warmup_records(model_name, texts, features, text_pairs=None):
    """`PredictionLog` records exercising each signature, for TF Serving's warmup.

    Each request holds one row, so that warmup fits any `max_batch_size`
    (TF Serving with batching refuses a larger request, and a version whose
    warmup fails does not load).

    Args:
        model_name: str. The name the model is served under.
        texts: sequence of str. Example texts to send.
        features: dict of int32 arrays. `texts` preprocessed, for `predict_ids`.
        text_pairs: the preprocessor's `text_pairs`: which signatures exist
            (see `export_classifier`) and whether Classify examples are pairs.

    Returns:
        A list of `prediction_log_pb2.PredictionLog`.
    """
    texts = list(texts)
    logs = []
    for i, (text, second) in enumerate(zip(texts, texts[::-1], strict=True)):
        pair_inputs = {sig.TEXT_A: text, sig.TEXT_B: second}
        requests = []
        if not text_pairs:
            requests.append((sig.PREDICT, {sig.TEXT: text}))
        if text_pairs is not False:
            requests.append((sig.PREDICT_PAIR, pair_inputs))
        if text_pairs:
            requests.append((sig.PREDICT, pair_inputs))
        for signature, inputs in requests:
            request = _predict_request(model_name, signature)
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(_tensor([value.encode()]))
            logs.append(_predict_log(request))
        request = _predict_request(model_name, sig.PREDICT_IDS)
        for key in (sig.TOKEN_IDS, sig.SEGMENT_IDS, sig.PADDING_MASK):
            request.inputs[key].CopyFrom(
                tf.make_tensor_proto(np.asarray(features[key][i : i + 1], np.int32))
            )
        logs.append(_predict_log(request))
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = sig.CLASSIFY
        example = request.input.example_list.examples.add()
        example.features.feature[sig.EXAMPLE_TEXT].bytes_list.value.append(
            text.encode()
        )
        if text_pairs:
            example.features.feature[sig.EXAMPLE_TEXT_PAIR].bytes_list.value.append(
                second.encode()
            )
        logs.append(
            prediction_log_pb2.PredictionLog(
                classify_log=prediction_log_pb2.ClassifyLog(request=request)
            )
        )
    return logs


def _predict_request(model_name, signature):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    return request


def _predict_log(request):
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def write_warmup_file(path, model_name, texts, features, text_pairs=None):
    """Writes `warmup_records(...)` as a TFRecord file (TF Serving's format)."""
    with tf.io.TFRecordWriter(path) as writer:
        for record in warmup_records(model_name, texts, features, text_pairs):
            writer.write(record.SerializeToString())


def read_warmup_file(path):
    """Yields the `PredictionLog`s of a warmup file (at most TF Serving's 1000)."""
    for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
        yield prediction_log_pb2.PredictionLog.FromString(record.numpy())
