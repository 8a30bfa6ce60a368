"""Evaluating and using a trained classifier on texts: the Python side of
`albert-tf evaluate` and `albert-tf predict MODEL`."""

import operator
import os
import weakref

import numpy as np
import tensorflow as tf

from albert_tf.models.task import inference_call
from albert_tf.training import metrics as metrics_lib
from albert_tf.training.data_files import LabelledText
from albert_tf.training.progress import ProgressLog


def load_text_classifier(model):
    """`model` itself, or the classifier saved at that path; it must take text."""
    from albert_tf.models import load_classifier

    if isinstance(model, (str, os.PathLike)):
        path, model = model, load_classifier(model)
    else:
        path = "this model"
    if getattr(model, "preprocessor", None) is None:
        raise ValueError(f"{path}: the model has no preprocessor; cannot take text")
    return model


def inference_function(model, static_shapes=False):
    """`model(x, training=False)` as float32 logits, traced once for many calls.

    Batches are padded to their longest row, so shapes are relaxed: it traces
    once or twice. Keep it for repeated evaluations (a new one traces again).
    It runs the model's `call_without_padding` where it has one, unless
    `static_shapes` (TPUs, whose XLA compiler cannot take its shapes).
    """

    @tf.function(autograph=False, reduce_retracing=True)
    def forward(x):
        # Looked up at each trace: kept, a bound method would hold the model
        # that a weak proxy `model` lets go.
        outputs = inference_call(model, unpadded=not static_shapes)(x)
        return tf.cast(outputs, tf.float32)

    return forward


def predict_logits(forward, dataset, progress=None):
    """Logits (float32 numpy) and labels of a dataset of `x` or `(x, y)` batches.

    Args:
        forward: a function from `inference_function(model)`.
        dataset: `tf.data.Dataset` of preprocessed batches.
        progress: `update(rows_done, values)`, e.g. a `ProgressLog`, or None.

    Returns:
        `(logits, labels)`; `labels` is `None` for a dataset of `x` only.
    """
    logits, labels = [], []
    rows = 0
    for batch in dataset:
        if isinstance(batch, tuple):
            x, y = batch
            labels.append(y.numpy())
        else:
            x = batch
        logits.append(forward(x).numpy())
        rows += len(logits[-1])
        if progress is not None:
            progress.update(rows, values=())
    logits = np.concatenate(logits)
    return logits, (np.concatenate(labels) if labels else None)


def logits_and_probabilities(model, outputs):
    """`model.logits_and_probabilities` on numpy arrays: the same figures
    exports and TFLite builds report."""
    logits, probabilities = model.logits_and_probabilities(outputs)
    return np.asarray(logits), np.asarray(probabilities)


# Each model's traced forward pass, kept while the model lives: the function
# holds a weak proxy, so the cache does not keep the model alive.
_forward_functions = weakref.WeakKeyDictionary()


def _forward(model):
    forward = _forward_functions.get(model)
    if forward is None:
        forward = _forward_functions[model] = inference_function(weakref.proxy(model))
    return forward


def model_outputs(model, data, batch_size, verbose=0):
    """Float32 outputs for every row of a `LabelledText`, in order; with
    `verbose=1`, an INFO line of progress every 10 s (none for shorter runs)."""
    from albert_tf.training.data_pipeline import eval_dataset

    try:
        size = operator.index(batch_size)  # Ints, numpy ints; not 2.5.
    except TypeError:
        size = 0
    if size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1; got {batch_size!r}")
    batch_size = size
    if not len(data):
        return np.zeros((0, model.num_classes), np.float32)
    unlabelled = LabelledText(texts=data.texts, text_pairs=data.text_pairs, labels=None)
    progress = (
        ProgressLog(len(data), what="Rows", unit="row", every_s=10.0)
        if verbose
        else None
    )
    outputs, _ = predict_logits(
        _forward(model),
        eval_dataset(unlabelled, model.preprocessor, batch_size),
        progress,
    )
    return outputs


def _text_list(texts, name):
    if texts is None or isinstance(texts, dict):
        raise ValueError(
            f"`{name}` must be a text or a list of texts; got {type(texts).__name__}"
        )
    if hasattr(texts, "numpy"):  # A string tensor.
        texts = texts.numpy()
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    elif hasattr(texts, "shape"):  # Arrays, tensors, DataFrames, Series.
        array = np.asarray(texts, dtype=object)
        if array.ndim == 2 and array.shape[1] == 1:  # One column.
            array = array[:, 0]
        if array.ndim > 1:
            raise ValueError(
                f"`{name}` must be one text per example; got shape {array.shape}"
            )
        texts = array.reshape(-1).tolist()
    elif not hasattr(texts, "__iter__"):
        raise ValueError(
            f"`{name}` must be a text or a list of texts; got {type(texts).__name__}"
        )
    texts = list(texts)
    for index, value in enumerate(texts):
        if isinstance(value, bytes):
            texts[index] = value = value.decode("utf-8")
        if not isinstance(value, str):
            raise ValueError(
                f"`{name}` must be texts, but entry {index} is {type(value).__name__}"
            )
    return texts


def _labelled_text(model, texts, pairs):
    takes_pairs = getattr(model.preprocessor, "text_pairs", None)
    if takes_pairs and pairs is None:
        raise ValueError(
            "This model was trained on text pairs: pass the second texts as "
            "`pairs=[...]`, one per text."
        )
    if takes_pairs is False and pairs is not None:
        raise ValueError("This model was trained on single texts; drop `pairs`.")
    texts = _text_list(texts, "texts")
    if pairs is not None:
        pairs = _text_list(pairs, "pairs")
        if len(pairs) != len(texts):
            raise ValueError(
                f"Got {len(texts)} texts but {len(pairs)} pairs: expected one "
                "second text per text."
            )
    return LabelledText(texts=texts, text_pairs=pairs, labels=None)


def predict(model, texts, pairs=None, batch_size=64, verbose=0):
    """Classifies texts (or sentence pairs) with a trained classifier.

    The outputs have the keys, shapes and meaning of `ServingClient.predict`
    and `TFLiteClassifier.predict`, so one piece of code reads all three
    (for a softmax head, `logits` are its log-probabilities).

    Args:
        model: an `albert_tf.models.TextClassifier` with a preprocessor, or
            the path of one (`OUTPUT/model.keras`).
        texts: str, or list of str.
        pairs: list of str, the second text of each example, for models
            trained on pairs; `None` otherwise.
        batch_size: int. Texts per forward pass.
        verbose: int. 1 logs progress (rows done, time left) every 10 s to
            the `albert_tf` logger; 0 does not.

    Returns:
        dict of numpy arrays: `logits` and `probabilities` `[n, num_classes]`,
        `class_id` `[n]` and `label` `[n]` (the class names).

    Example:
    ```python
    from albert_tf.training import predict

    predict("runs/tiny/model.keras", ["A warm, funny film."])["label"]
    ```
    """
    from albert_tf.models import class_names

    model = load_text_classifier(model)
    outputs = model_outputs(
        model, _labelled_text(model, texts, pairs), batch_size, verbose
    )
    class_id = outputs.argmax(-1)
    names = class_names(model)
    logits, probabilities = logits_and_probabilities(model, outputs)
    return {
        "logits": logits,
        "probabilities": probabilities,
        "class_id": class_id,
        "label": np.array([names[i] for i in class_id], dtype=object),
    }


def report_from_outputs(outputs, labels, label_names, from_logits=True):
    """The `evaluate` report of `outputs` (logits, or probabilities) against
    class ids: `metrics.classification_report` plus the mean `loss`."""
    labels = np.asarray(labels, np.int64)
    report = metrics_lib.classification_report(
        labels, np.asarray(outputs).argmax(-1), label_names
    )
    report["loss"] = (
        metrics_lib.mean_cross_entropy(outputs, labels, from_logits=from_logits)
        if len(labels)
        else None
    )
    return report


def evaluate(model, texts, labels, pairs=None, batch_size=64, verbose=0):
    """Accuracy, per-class precision/recall/F1, confusion matrix and loss.

    The report `albert-tf evaluate` prints, and `metrics.json` keeps for the
    best dev step, for texts and labels held in Python.

    Args:
        model: an `albert_tf.models.TextClassifier` with a preprocessor, or
            the path of one (`OUTPUT/model.keras`).
        texts: list of str.
        labels: class ids, or names from the model's `label_names`, one per
            text (a list, array, column vector or tensor).
        pairs: list of str, the second text of each example, for models
            trained on pairs; `None` otherwise.
        batch_size: int. Texts per forward pass.
        verbose: int. 1 logs progress (rows done, time left) every 10 s to
            the `albert_tf` logger; 0 does not.

    Returns:
        A JSON-ready dict: `accuracy`, `macro_f1`, `num_examples`, `loss`,
        `per_class` (name -> precision, recall, f1, support), `label_names`
        and `confusion_matrix` (rows: true class; columns: predicted).

    Example:
    ```python
    from albert_tf.training import evaluate

    report = evaluate("runs/tiny/model.keras", ["Great.", "Dull."],
                      ["positive", "negative"])
    report["accuracy"], report["per_class"]["negative"]["recall"]
    ```
    """
    from albert_tf.models import class_names
    from albert_tf.models.task import class_ids

    model = load_text_classifier(model)
    data = _labelled_text(model, texts, pairs)
    if not len(data):
        raise ValueError("No texts to evaluate.")
    ids = class_ids(model, labels, num_inputs=len(data))
    return report_from_outputs(
        model_outputs(model, data, batch_size, verbose),
        ids,
        class_names(model),
        from_logits=not model.returns_probabilities,
    )
