"""The ALBERT encoder network."""

import keras

from albert_tf.api_export import albert_tf_export
from albert_tf.layers.position_embedding import PositionEmbedding
from albert_tf.layers.token_packing import TokenPacking
from albert_tf.layers.transformer_encoder import TransformerEncoder
from albert_tf.models.backbone import Backbone


def albert_kernel_initializer(stddev=0.02):
    return keras.initializers.TruncatedNormal(stddev=stddev)


def gelu_approximate(x):
    # ALBERT's "gelu_new": the tanh approximation of GELU.
    return keras.activations.gelu(x, approximate=True)


def gelu_exact(x):
    return keras.activations.gelu(x, approximate=False)


# Original ALBERT and keras-hub use the tanh approximation; Hugging Face's
# v1 configs say `hidden_act="gelu"`, which transformers computes with erf.
ACTIVATIONS = {"gelu_approximate": gelu_approximate, "gelu": gelu_exact}


@albert_tf_export("albert_tf.models.AlbertBackbone")
class AlbertBackbone(Backbone):
    """ALBERT encoder network.

    Implements "ALBERT: A Lite BERT for Self-supervised Learning of Language
    Representations" (Lan et al., 2019, https://arxiv.org/abs/1909.11942):
    a factorized embedding (`embedding_dim`, projected to `hidden_dim`) and
    Transformer layers whose weights are shared across layers. The
    `num_layers` layer applications are split evenly over `num_groups` groups;
    each group holds `num_inner_repetitions` distinct encoder blocks. Padding
    masks are respected and any sequence length up to `max_sequence_length`
    works. The default constructor gives a randomly initialised model.

    Args:
        vocabulary_size: int. The size of the token vocabulary.
        num_layers: int, divisible by `num_groups`. How many times the input
            is passed through a group of Transformer blocks.
        num_heads: int. Attention heads per block; must divide `hidden_dim`.
        embedding_dim: int. The size of the token, position and segment
            embeddings.
        hidden_dim: int. The width of the Transformer and pooler layers.
        intermediate_dim: int. The feed-forward hidden width of each block.
        num_groups: int. Number of groups of blocks with distinct weights.
        num_inner_repetitions: int. Number of blocks in each group.
        dropout: float. Dropout rate in the embeddings and encoder blocks.
        max_sequence_length: int. The longest input sequence; the size of
            the position embedding table.
        num_segments: int. Number of distinct `segment_ids` values.
        activation: string. The feed-forward activation: `"gelu_approximate"`
            (original ALBERT's tanh GELU, the default) or `"gelu"` (the exact
            erf GELU, which Hugging Face's ALBERT v1 configs ask for).
        dtype: string or `keras.DTypePolicy`. The dtype of computations and
            weights.

    Example:
    ```python
    input_data = {
        "token_ids": np.ones(shape=(1, 12), dtype="int32"),
        "segment_ids": np.array([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]]),
        "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]]),
    }
    model = albert_tf.models.AlbertBackbone(
        vocabulary_size=30000,
        num_layers=12,
        num_heads=12,
        embedding_dim=128,
        hidden_dim=768,
        intermediate_dim=3072,
        max_sequence_length=12,
    )
    outputs = model(input_data)  # {"sequence_output", "pooled_output"}
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        embedding_dim,
        hidden_dim,
        intermediate_dim,
        num_groups=1,
        num_inner_repetitions=1,
        dropout=0.0,
        max_sequence_length=512,
        num_segments=2,
        activation="gelu_approximate",
        dtype=None,
        **kwargs,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {sorted(ACTIVATIONS)}. Received: "
                f"`activation={activation!r}`."
            )
        if num_layers % num_groups != 0:
            raise ValueError(
                "`num_layers` must be divisible by `num_groups`. Received: "
                f"`num_layers={num_layers}` and `num_groups={num_groups}`."
            )
        if hidden_dim % num_heads != 0:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. Received: "
                f"`hidden_dim={hidden_dim}` and `num_heads={num_heads}`."
            )

        # === Layers ===
        self.token_embedding = keras.layers.Embedding(
            input_dim=vocabulary_size,
            output_dim=embedding_dim,
            embeddings_initializer=albert_kernel_initializer(),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = PositionEmbedding(
            sequence_length=max_sequence_length,
            initializer=albert_kernel_initializer(),
            dtype=dtype,
            name="position_embedding",
        )
        self.segment_embedding = keras.layers.Embedding(
            input_dim=num_segments,
            output_dim=embedding_dim,
            embeddings_initializer=albert_kernel_initializer(),
            dtype=dtype,
            name="segment_embedding",
        )
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="embeddings_add")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-12, dtype=dtype, name="embeddings_layer_norm"
        )
        self.embeddings_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="embeddings_dropout"
        )
        self.embeddings_projection = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=albert_kernel_initializer(),
            dtype=dtype,
            name="embedding_projection",
        )
        self.transformer_layers = [
            [
                TransformerEncoder(
                    num_heads=num_heads,
                    intermediate_dim=intermediate_dim,
                    activation=ACTIVATIONS[activation],
                    dropout=dropout,
                    layer_norm_epsilon=1e-12,
                    kernel_initializer=albert_kernel_initializer(),
                    dtype=dtype,
                    name=f"group_{group}_inner_layer_{inner}",
                )
                for inner in range(num_inner_repetitions)
            ]
            for group in range(num_groups)
        ]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=albert_kernel_initializer(),
            activation="tanh",
            dtype=dtype,
            name="pooled_dense",
        )

        # === Functional Model ===
        token_id_input = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_id_input = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask_input = keras.Input(
            shape=(None,), dtype="int32", name="padding_mask"
        )
        x = self._embed(token_id_input, segment_id_input)
        x = self.embeddings_projection(x)
        for block in self._blocks_in_order(num_layers):
            x = block(x, padding_mask=padding_mask_input)
        sequence_output = x
        pooled_output = self.pooled_dense(x[:, 0, :])
        super().__init__(
            inputs={
                "token_ids": token_id_input,
                "segment_ids": segment_id_input,
                "padding_mask": padding_mask_input,
            },
            outputs={
                "sequence_output": sequence_output,
                "pooled_output": pooled_output,
            },
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_groups = num_groups
        self.num_inner_repetitions = num_inner_repetitions
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.activation = activation
        self.cls_token_index = 0

    def _embed(self, token_ids, segment_ids, training=None):
        """Token + position + segment embeddings, normalized; `embedding_dim`
        wide (before the projection to `hidden_dim`)."""
        tokens = self.token_embedding(token_ids)
        positions = self.position_embedding(tokens)
        segments = self.segment_embedding(segment_ids)
        x = self.embeddings_add((tokens, positions, segments))
        x = self.embeddings_layer_norm(x)
        return self.embeddings_dropout(x, training=training)

    def _blocks_in_order(self, num_layers):
        # Layer i runs group i // (num_layers / num_groups), as in the paper.
        for group in self.transformer_layers:
            for _ in range(num_layers // len(self.transformer_layers)):
                yield from group

    def call_without_padding(self, inputs):
        """`call` at inference, with padding taking no compute.

        The Transformer layers' projections, feed-forward nets and layer
        norms, nearly all of the arithmetic, run on the batch's real tokens
        alone (see `albert_tf.layers.TokenPacking`); only the embedding
        lookup and attention see the padded layout. On batches of SST-2
        sentences padded to their longest this takes about half the time of
        `call`. Exports for TF Serving and `predict()` use it.

        The `pooled_output` equals `call(inputs, training=False)`'s up to
        float round-off, for every row with a real token, and so does
        `sequence_output` at real tokens; it is zero at padding. The number
        of real tokens sets tensor shapes, so XLA (`jit_compile`, TPUs)
        cannot compile it: training uses `call`.

        Args:
            inputs: dict of `token_ids`, `segment_ids` and `padding_mask`,
                each `[batch, length]`.

        Returns:
            dict of `sequence_output` and `pooled_output`, as `call`.
        """
        packing = TokenPacking(inputs["padding_mask"])
        x = self._embed(inputs["token_ids"], inputs["segment_ids"], training=False)
        x = self.embeddings_projection(packing.pack(x))
        for block in self._blocks_in_order(self.num_layers):
            x = block.call_packed(x, packing)
        sequence_output = packing.unpack(x)
        return {
            "sequence_output": sequence_output,
            "pooled_output": self.pooled_dense(sequence_output[:, 0, :]),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "num_groups": self.num_groups,
                "num_inner_repetitions": self.num_inner_repetitions,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "max_sequence_length": self.max_sequence_length,
                "num_segments": self.num_segments,
                "activation": self.activation,
            }
        )
        return config
