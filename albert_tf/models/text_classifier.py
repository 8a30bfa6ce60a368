"""The generic base class of text classifiers."""

import keras
import numpy as np

from albert_tf.api_export import albert_tf_export
from albert_tf.models.task import Task

# The names of softmax functions: Keras's activation and `keras.ops.softmax`
# ("softmax"), and `tf.nn.softmax` ("softmax_v2").
SOFTMAX_NAMES = ("softmax", "softmax_v2")


@albert_tf_export("albert_tf.models.TextClassifier")
class TextClassifier(Task):
    """Base class of text classification tasks.

    Adds a default `compile()`: Adam (learning rate 5e-5), sparse categorical
    cross-entropy (from logits unless `activation="softmax"`) and sparse
    categorical accuracy.
    """

    @property
    def returns_probabilities(self):
        """Whether `predict` gives probabilities (a softmax head), not logits:
        `activation="softmax"`, or `keras.ops.softmax` or `tf.nn.softmax`
        passed as the callable."""
        activation = getattr(self, "activation", None)
        return getattr(activation, "__name__", None) in SOFTMAX_NAMES

    def logits_and_probabilities(self, outputs):
        """`(logits, probabilities)`, float32, from the model's outputs, as
        `evaluate`, exports and TFLite builds report them. For a softmax head
        the logits are its log-probabilities, floored so that an underflowed
        0 gives no -inf. Tensors in, tensors out (also inside a graph)."""
        outputs = keras.ops.cast(outputs, "float32")
        if self.returns_probabilities:
            floor = np.finfo(np.float32).tiny
            return keras.ops.log(keras.ops.maximum(outputs, floor)), outputs
        return outputs, keras.ops.softmax(outputs, axis=-1)

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """Configures the model for training, with task defaults for "auto".

        Args:
            optimizer: `"auto"` (Adam, 5e-5), or any `keras.Model.compile` value.
            loss: `"auto"` (sparse categorical cross-entropy), or any loss.
            metrics: `"auto"` (sparse categorical accuracy), or a metric list.
            **kwargs: passed to `keras.Model.compile`.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(5e-5)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=not self.returns_probabilities
            )
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
