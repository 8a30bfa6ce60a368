"""Runs a `.tflite` ALBERT build in LiteRT's interpreter, tf-text ops registered."""

import numpy as np
import tensorflow_text as tf_text
from ai_edge_litert.interpreter import InterpreterWithCustomOps

from albert_tf.native_logs import native_info_dropped
from albert_tf.tflite.build import read_label_names
from albert_tf.tflite.build import sidecar_paths
from albert_tf.tflite.converter import ID_INPUTS
from albert_tf.tflite.converter import SIGNATURE_KEY
from albert_tf.tflite.converter import TEXT_INPUT


class TFLiteClassifier:
    """A `.tflite` classifier (text-in or ids-in) behind a `predict` call.

    Args:
        model: str path or bytes of the `.tflite` file.
        num_threads: int. Interpreter threads.
        label_names: list of str, or `None` to read `OUT.labels.txt` beside a
            `model` path (written by `albert-tf tflite`). With names,
            `predict` also returns a `label` per text.

    Example:
    ```python
    model = TFLiteClassifier("sst2.tflite", num_threads=2)
    model.predict(["A warm, funny film."])["label"]  # From sst2.labels.txt.
    ```
    """

    def __init__(self, model, num_threads=2, label_names=None):
        source = (
            {"model_content": model}
            if isinstance(model, bytes)
            else {"model_path": str(model)}
        )
        # The app-side equivalent is linking tf-text's TFLite op registrar.
        self.interpreter = InterpreterWithCustomOps(
            custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS,
            num_threads=num_threads,
            **source,
        )
        self.runner = self.interpreter.get_signature_runner(SIGNATURE_KEY)
        self.input_details = self.runner.get_input_details()
        self.input_kind = "text" if TEXT_INPUT in self.input_details else "ids"
        self._first_run = True
        if label_names is None and not isinstance(model, bytes):
            label_names = _sidecar_labels(model)
        self.label_names = label_names

    def run(self, **inputs):
        """One interpreter call on numpy inputs keyed by signature input name."""
        if self._first_run:  # LiteRT prints an INFO line as it sets XNNPACK up.
            self._first_run = False
            with native_info_dropped():
                return self.runner(**inputs)
        return self.runner(**inputs)

    def predict(self, texts, preprocessor=None, batch_size=32, pairs=None):
        """Outputs for a list of texts, concatenated over batches.

        Args:
            texts: str or bytes, or a list of them.
            preprocessor: the Keras preprocessor, needed for ids-in builds,
                which take one example at a time.
            batch_size: int. Texts per call of a text-in build.
            pairs: list of str, the second text of each example, for a model
                trained on pairs (ids-in builds only).

        Returns:
            dict of numpy arrays: `logits` and `probabilities`
            `[len(texts), num_classes]`, `class_id` `[len(texts)]`, and
            `label` (str) when the label names are known.
        """
        if isinstance(texts, tuple):
            raise ValueError(
                "TFLite builds take a text or a list of single texts; received a "
                "tuple. Pass the second texts of pairs as `pairs=`."
            )
        # One text is one row, as in `ServingClient.predict` and `predict`.
        texts = [texts] if isinstance(texts, (str, bytes)) else list(texts)
        if isinstance(pairs, (str, bytes)):
            pairs = [pairs]
        if any(isinstance(text, (tuple, list)) for text in texts):
            raise ValueError(
                "Received a list of pairs; pass the second texts as `pairs=` "
                "(ids-in builds only)."
            )
        if pairs is not None and self.input_kind == "text":
            raise ValueError(
                "A text-in build takes single texts; pairs need an ids-in build "
                "(`albert-tf tflite --input ids`)."
            )
        if self.input_kind == "text":
            calls = [
                {TEXT_INPUT: np.array(texts[i : i + batch_size], dtype=object)}
                for i in range(0, len(texts), batch_size)
            ] or [{TEXT_INPUT: np.array([], dtype=object)}]
        else:
            if preprocessor is None:
                raise ValueError("An ids-in build needs the preprocessor to tokenize.")
            length = self.input_details[ID_INPUTS[0]]["shape"][1]
            inputs = np.array(texts, dtype=object)
            if pairs is not None:
                inputs = (inputs, np.array(list(pairs), dtype=object))
            features = preprocessor(inputs, sequence_length=length)
            calls = [
                {k: np.asarray(features[k][i : i + 1], np.int32) for k in ID_INPUTS}
                for i in range(len(texts))
            ]
        outputs = [self.run(**call) for call in calls]
        if not outputs:  # No texts, ids build: empty outputs, as a text build gives.
            outputs = [
                {
                    key: np.zeros((0, *detail["shape"][1:]), detail["dtype"])
                    for key, detail in self.runner.get_output_details().items()
                }
            ]
        outputs = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
        outputs["class_id"] = np.argmax(outputs["logits"], axis=-1)
        if self.label_names is not None:
            outputs["label"] = np.array(self.label_names, dtype=object)[
                outputs["class_id"]
            ]
        return outputs


def _sidecar_labels(path):
    labels_path, _ = sidecar_paths(path)
    return read_label_names(labels_path)
