"""A post-layer-norm Transformer encoder block (BERT/ALBERT style)."""

import keras
from keras import ops

from albert_tf.api_export import albert_tf_export


@albert_tf_export("albert_tf.layers.TransformerEncoder")
class TransformerEncoder(keras.layers.Layer):
    """One Transformer encoder block: self-attention then a feed-forward net.

    Residual connections are followed by layer normalization ("post-LN"), as
    in BERT and ALBERT ("Attention Is All You Need", Vaswani et al., 2017).
    Sub-layer attribute and layer names match keras-hub's `TransformerEncoder`
    so that `.weights.h5` files are interchangeable.

    Args:
        intermediate_dim: int. Width of the feed-forward hidden layer.
        num_heads: int. Number of attention heads; must divide the input width.
        dropout: float. Dropout rate on attention probabilities and outputs.
        activation: string or callable. Feed-forward activation.
        layer_norm_epsilon: float. Epsilon of both layer normalizations.
        kernel_initializer: string or `keras.initializers.Initializer`.
        bias_initializer: string or `keras.initializers.Initializer`.

    Example:
    ```python
    block = albert_tf.layers.TransformerEncoder(intermediate_dim=32, num_heads=2)
    outputs = block(np.zeros((2, 8, 16)), padding_mask=np.ones((2, 8)))
    ```
    """

    def __init__(
        self,
        intermediate_dim,
        num_heads,
        dropout=0.0,
        activation="relu",
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def _initializers(self):
        # A fresh initializer per sub-layer, so that seeded ones differ.
        clone = lambda init: keras.initializers.deserialize(  # noqa: E731
            keras.initializers.serialize(init)
        )
        return {
            "kernel_initializer": clone(self.kernel_initializer),
            "bias_initializer": clone(self.bias_initializer),
        }

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        if hidden_dim % self.num_heads != 0:
            raise ValueError(
                f"The input width ({hidden_dim}) must be divisible by "
                f"`num_heads` ({self.num_heads})."
            )
        # === Layers ===
        self._self_attention_layer = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name="self_attention_layer",
            **self._initializers(),
        )
        self._self_attention_layer.build(
            query_shape=inputs_shape, value_shape=inputs_shape
        )
        self._self_attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="self_attention_layer_norm",
        )
        self._self_attention_layer_norm.build(inputs_shape)
        self._self_attention_dropout = keras.layers.Dropout(
            rate=self.dropout, dtype=self.dtype_policy, name="self_attention_dropout"
        )
        self._feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="feedforward_layer_norm",
        )
        self._feedforward_layer_norm.build(inputs_shape)
        self._feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="feedforward_intermediate_dense",
            **self._initializers(),
        )
        self._feedforward_intermediate_dense.build(inputs_shape)
        self._feedforward_output_dense = keras.layers.Dense(
            hidden_dim,
            dtype=self.dtype_policy,
            name="feedforward_output_dense",
            **self._initializers(),
        )
        self._feedforward_output_dense.build(
            tuple(inputs_shape[:-1]) + (self.intermediate_dim,)
        )
        self._feedforward_dropout = keras.layers.Dropout(
            rate=self.dropout, dtype=self.dtype_policy, name="feedforward_dropout"
        )
        self.built = True

    def call(self, inputs, padding_mask=None, training=None):
        attention_mask = None
        if padding_mask is not None:
            # [batch, keys] -> [batch, 1, keys]: every query ignores padded keys.
            attention_mask = ops.cast(ops.expand_dims(padding_mask, axis=1), "int32")
        x = self._self_attention_layer(
            query=inputs,
            value=inputs,
            attention_mask=attention_mask,
            training=training,
        )
        x = self._self_attention_dropout(x, training=training)
        x = self._self_attention_layer_norm(x + inputs)
        residual = x
        x = self._feedforward_intermediate_dense(x)
        x = self._feedforward_output_dense(x)
        x = self._feedforward_dropout(x, training=training)
        return self._feedforward_layer_norm(x + residual)

    def call_packed(self, packed, packing):
        """`call` at inference, run on real tokens only (see `TokenPacking`).

        Attention runs on the padded layout; everything else on the packed
        tokens. Gives `packing.pack(call(...))` up to float round-off.

        Args:
            packed: `[1, tokens, width]`, from `packing.pack`.
            packing: `albert_tf.layers.TokenPacking` of the batch.

        Returns:
            `[1, tokens, width]`: the block's outputs for those tokens.
        """
        # The sub-layers `MultiHeadAttention.call` runs, in the same order.
        attention = self._self_attention_layer
        query, key, value = (
            packing.unpack(dense(packed))
            for dense in (
                attention._query_dense,
                attention._key_dense,
                attention._value_dense,
            )
        )
        attention_mask = ops.expand_dims(packing.padding_mask, axis=1)
        x, _ = attention._compute_attention(
            query, key, value, attention_mask, training=False
        )
        x = attention._output_dense(packing.pack(x))
        x = self._self_attention_layer_norm(x + packed)
        residual = x
        x = self._feedforward_intermediate_dense(x)
        x = self._feedforward_output_dense(x)
        return self._feedforward_layer_norm(x + residual)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
