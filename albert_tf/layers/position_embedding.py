"""Learned absolute position embeddings."""

import keras
from keras import ops

from albert_tf.api_export import albert_tf_export


@albert_tf_export("albert_tf.layers.PositionEmbedding")
class PositionEmbedding(keras.layers.Layer):
    """A learned position embedding, sliced to the input's sequence length.

    Any input length up to `sequence_length` works; the weight keeps the
    keras-hub name (`embeddings`) so presets load into either library.

    Args:
        sequence_length: int. The largest sequence length the layer accepts.
        initializer: string or `keras.initializers.Initializer`. Initializer
            for the embedding table.

    Example:
    ```python
    layer = albert_tf.layers.PositionEmbedding(sequence_length=16)
    positions = layer(np.zeros((2, 8, 4)))  # (2, 8, 4)
    ```
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if sequence_length is None:
            raise ValueError("`sequence_length` must be an integer, received `None`.")
        self.sequence_length = int(sequence_length)
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=[self.sequence_length, inputs_shape[-1]],
            initializer=self.initializer,
            trainable=True,
        )
        self.built = True

    def call(self, inputs):
        shape = ops.shape(inputs)
        table = ops.convert_to_tensor(self.position_embeddings)
        table = ops.slice(table, (0, 0), (shape[-2], shape[-1]))
        return ops.broadcast_to(table, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
