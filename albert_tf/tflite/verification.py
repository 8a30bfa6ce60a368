"""Checks a TFLite build against the float Keras model, and compares builds.

The float32 build must match the Keras logits (max abs diff <= 1e-4);
quantized builds are gated on measured accuracy and prediction agreement,
because BERT-family accuracy is known to collapse silently after conversion.
"""

import dataclasses
import logging
import time

import numpy as np

from albert_tf.models.task import class_ids
from albert_tf.tflite.tflite_classifier import TFLiteClassifier
from albert_tf.training.evaluation import logits_and_probabilities

logger = logging.getLogger(__name__)

FLOAT32_TOLERANCE = 1e-4


@dataclasses.dataclass
class Verification:
    """What `verify` measured (accuracies are `None` without labels)."""

    examples: int
    max_abs_logit_diff: float
    agreement: float
    keras_accuracy: float = None
    tflite_accuracy: float = None
    failures: list = dataclasses.field(default_factory=list)

    @property
    def passed(self):
        return not self.failures

    def as_dict(self):
        """The figures as plain JSON values (recorded in a build's metadata)."""
        return {
            "examples": self.examples,
            "max_abs_logit_diff": float(self.max_abs_logit_diff),
            "agreement": float(self.agreement),
            "keras_accuracy": self.keras_accuracy,
            "tflite_accuracy": self.tflite_accuracy,
        }

    def summary(self):
        parts = [
            f"{self.examples} examples",
            f"max |logit diff| {self.max_abs_logit_diff:.2e}",
            f"agreement {100 * self.agreement:.2f}%",
        ]
        if self.tflite_accuracy is not None:
            parts.append(
                f"accuracy {100 * self.tflite_accuracy:.2f}% "
                f"(float model {100 * self.keras_accuracy:.2f}%)"
            )
        return ", ".join(parts)


def keras_logits(classifier, texts, sequence_length=None, fast=False, batch_size=32):
    """The float model's logits for raw texts, tokenized as a build does.

    Args:
        classifier: the float `TextClassifier` (or a `SavedModelClassifier`).
        texts: list of str.
        sequence_length: int. The build's packed length (default: the
            preprocessor's).
        fast: bool. Tokenize with `FastSentencepieceTokenizer`, as text-in
            builds do; it splits equal-score ties ("eee") the other way
            from the regular op, which would show as a conversion error.
        batch_size: int.

    Returns:
        float32 `[len(texts), num_classes]`: for a softmax head, its
        log-probabilities, floored like the build's (`converter._outputs`).
    """
    preprocessor = classifier.preprocessor
    if fast and not preprocessor.tokenizer.fast:
        tokenizer = preprocessor.tokenizer
        preprocessor = type(preprocessor)(
            type(tokenizer)(
                proto=tokenizer.proto,
                lowercase=tokenizer.lowercase,
                strip_accents=tokenizer.strip_accents,
                fast=True,
            ),
            sequence_length=preprocessor.sequence_length,
            truncate=preprocessor.truncate,
        )
    length = sequence_length or preprocessor.sequence_length
    outputs = [
        np.asarray(
            classifier(
                preprocessor(
                    np.array(texts[i : i + batch_size], dtype=object),
                    sequence_length=length,
                ),
                training=False,
            )
        )
        for i in range(0, len(texts), batch_size)
    ]
    if not outputs:
        return np.zeros((0, classifier.num_classes), np.float32)
    return logits_and_probabilities(classifier, np.concatenate(outputs))[0]


def verify(
    classifier,
    tflite_model,
    texts,
    labels=None,
    quantized=True,
    max_accuracy_drop=1.0,
    min_agreement=None,
    reference_logits=None,
    sequence_length=None,
):
    """Compares a TFLite build with the float Keras model on real texts.

    The float model reads the texts as the build does (`keras_logits`), so
    that differences come from conversion and quantization alone.

    Args:
        classifier: the float `albert_tf.models.TextClassifier`.
        tflite_model: `TFLiteClassifier`, or a path/bytes of a `.tflite` file.
        texts: list of str.
        labels: class ids or label names (of `classifier.label_names`), or
            `None`.
        quantized: bool. `False` for a float32 build: logits must then match
            within 1e-4. `True`: the accuracy/agreement gates apply.
        max_accuracy_drop: float. Allowed accuracy drop, in points.
        min_agreement: float in [0, 1] or `None`. Minimum share of examples
            whose predicted class matches the float model.
        reference_logits: precomputed `keras_logits` for `texts` (optional).
        sequence_length: int. The packed length of a text-in build, if not
            the preprocessor's (an ids-in build's inputs say it).

    Returns:
        A `Verification`; `failures` lists each gate that failed.
    """
    if not isinstance(tflite_model, TFLiteClassifier):
        tflite_model = TFLiteClassifier(tflite_model)
    if reference_logits is None:
        reference_logits = keras_logits(
            classifier,
            texts,
            reference_length(tflite_model, sequence_length),
            fast=tflite_model.input_kind == "text",
        )
    got = tflite_model.predict(texts, preprocessor=classifier.preprocessor)["logits"]
    diff = float(np.abs(got - reference_logits).max()) if len(texts) else 0.0
    keras_pred = reference_logits.argmax(-1)
    tflite_pred = got.argmax(-1)
    result = Verification(
        examples=len(texts),
        max_abs_logit_diff=diff,
        agreement=float((keras_pred == tflite_pred).mean()),
    )
    if labels is not None:
        labels = class_ids(classifier, labels, len(texts))
        result.keras_accuracy = float((keras_pred == labels).mean())
        result.tflite_accuracy = float((tflite_pred == labels).mean())
    if not quantized and diff > FLOAT32_TOLERANCE:
        result.failures.append(
            f"float32 logits differ from Keras by {diff:.2e} > {FLOAT32_TOLERANCE:.0e}"
        )
    if quantized and result.tflite_accuracy is not None:
        drop = 100 * (result.keras_accuracy - result.tflite_accuracy)
        if drop > max_accuracy_drop:
            result.failures.append(
                f"accuracy dropped {drop:.2f} points > {max_accuracy_drop} allowed"
            )
    if min_agreement is not None and result.agreement < min_agreement:
        result.failures.append(
            f"agreement {100 * result.agreement:.2f}% < "
            f"{100 * min_agreement:.2f}% required"
        )
    logger.info("TFLite verification: %s", result.summary())
    return result


def reference_length(tflite_model, sequence_length=None):
    """The packed length of a build: an ids-in build's input shape, else
    `sequence_length` (`None`: the preprocessor's)."""
    if tflite_model.input_kind == "ids":
        return int(tflite_model.input_details["token_ids"]["shape"][1])
    return sequence_length


def batch1_latency_ms(tflite_model, text, preprocessor=None, runs=20, warmup=3):
    """Median latency (ms) of one batch-1 call, after warmup calls.

    Args:
        tflite_model: `TFLiteClassifier`.
        text: str. The input; ids-in builds get it pre-tokenized by
            `preprocessor` (tokenization not timed).
        preprocessor: the Keras preprocessor (ids-in builds only).
        runs: int. Timed calls.
        warmup: int. Untimed calls first.
    """
    inputs = tflite_model_inputs(tflite_model, text, preprocessor)
    return _median_call_ms(tflite_model, inputs, runs, warmup)


def tflite_model_inputs(tflite_model, text, preprocessor=None):
    """Numpy inputs of one batch-1 call for a text."""
    if tflite_model.input_kind == "text":
        return {"text": np.array([text], dtype=object)}
    if preprocessor is None:
        raise ValueError("An ids-in build needs the preprocessor to tokenize.")
    length = tflite_model.input_details["token_ids"]["shape"][1]
    x = preprocessor(np.array([text], dtype=object), sequence_length=length)
    return {k: np.asarray(v, np.int32) for k, v in x.items()}


def _median_call_ms(tflite_model, inputs, runs, warmup):
    for _ in range(warmup):
        tflite_model.run(**inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        tflite_model.run(**inputs)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))
