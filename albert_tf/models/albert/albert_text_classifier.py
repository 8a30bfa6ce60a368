"""ALBERT text classifier: backbone + dropout + dense head."""

import keras

from albert_tf.api_export import albert_tf_export
from albert_tf.models.albert.albert_backbone import AlbertBackbone
from albert_tf.models.albert.albert_backbone import albert_kernel_initializer
from albert_tf.models.albert.albert_text_classifier_preprocessor import (
    AlbertTextClassifierPreprocessor,
)
from albert_tf.models.text_classifier import SOFTMAX_NAMES
from albert_tf.models.text_classifier import TextClassifier


@albert_tf_export("albert_tf.models.AlbertTextClassifier")
class AlbertTextClassifier(TextClassifier):
    """An end-to-end ALBERT model for classification tasks.

    Dropout and a dense layer on the backbone's `pooled_output`. With a
    `preprocessor`, `fit()`, `predict()` and `evaluate()` take raw strings
    (or pairs of strings); without one they take dicts of `token_ids`,
    `segment_ids` and `padding_mask`. `compile()` has defaults (Adam 5e-5,
    sparse categorical cross-entropy, accuracy).

    Args:
        backbone: `albert_tf.models.AlbertBackbone`.
        num_classes: int. Number of classes.
        preprocessor: `albert_tf.models.AlbertTextClassifierPreprocessor` or
            `None`.
        activation: `None` (logits, the default), `"softmax"` or a callable.
        dropout: float. Dropout rate before the dense layer.
        label_names: list of str. Optional names of the classes, in class id
            order; kept in config, so saved models and exports carry them.

    Example:
    ```python
    features = ["The quick brown fox jumped.", "I forgot my homework."]
    labels = [0, 3]
    tokenizer = albert_tf.models.AlbertTokenizer(proto="spiece.model")
    preprocessor = albert_tf.models.AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=128
    )
    backbone = albert_tf.models.AlbertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=4,
        num_heads=4, embedding_dim=64, hidden_dim=128, intermediate_dim=256,
        max_sequence_length=128,
    )
    classifier = albert_tf.models.AlbertTextClassifier(
        backbone, num_classes=4, preprocessor=preprocessor
    )
    classifier.compile()
    classifier.fit(x=features, y=labels, batch_size=2)
    classifier.predict(features)
    classifier.backbone.trainable = False  # Freeze the encoder.
    ```
    """

    backbone_cls = AlbertBackbone
    preprocessor_cls = AlbertTextClassifierPreprocessor

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor=None,
        activation=None,
        dropout=0.1,
        label_names=None,
        **kwargs,
    ):
        if getattr(activation, "__name__", None) in SOFTMAX_NAMES:
            activation = "softmax"  # Saved by name (`tf.nn.softmax` cannot be).
        if label_names is not None:
            if isinstance(label_names, (str, bytes)):
                raise ValueError(
                    "`label_names` must be a list of names, one per class. "
                    f"Received the single string {label_names!r}."
                )
            label_names = [str(name) for name in label_names]
            if len(label_names) != num_classes:
                raise ValueError(
                    f"`label_names` has {len(label_names)} names but "
                    f"`num_classes={num_classes}`: expected one name per class."
                )
            if len(set(label_names)) != len(label_names):
                raise ValueError(
                    f"`label_names` must be distinct. Received: {label_names}"
                )
        length = getattr(preprocessor, "sequence_length", None)
        if length is not None and length > backbone.max_sequence_length:
            raise ValueError(
                f"The preprocessor's `sequence_length={length}` exceeds the "
                f"backbone's `max_sequence_length={backbone.max_sequence_length}`."
            )
        tokenizer = getattr(preprocessor, "tokenizer", None)
        # While Keras deserializes, the vocabulary (an asset) is not loaded yet.
        loaded = getattr(tokenizer, "proto", None) is not None
        pieces = tokenizer.vocabulary_size() if loaded else None
        if pieces is not None and pieces > backbone.vocabulary_size:
            # Ids past the embedding table fail at predict on CPU, and may
            # silently read garbage on GPUs.
            raise ValueError(
                f"The tokenizer has {pieces} pieces but the backbone's "
                f"`vocabulary_size` is {backbone.vocabulary_size}: they come "
                "from different models."
            )
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.output_dropout = keras.layers.Dropout(
            dropout, dtype=backbone.dtype_policy, name="output_dropout"
        )
        self.output_dense = keras.layers.Dense(
            num_classes,
            kernel_initializer=albert_kernel_initializer(),
            activation=activation,
            dtype=backbone.dtype_policy,
            name="logits",
        )

        # Needed by the default `compile()` inside `super().__init__()`.
        self.activation = keras.activations.get(activation)

        # === Functional Model ===
        inputs = backbone.input
        pooled = backbone(inputs)["pooled_output"]
        pooled = self.output_dropout(pooled)
        outputs = self.output_dense(pooled)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.dropout = dropout
        self.label_names = label_names

    def call_without_padding(self, inputs):
        """`call(inputs, training=False)` with padding taking no compute:
        see `AlbertBackbone.call_without_padding`. Graph ops only, not for
        XLA."""
        pooled = self.backbone.call_without_padding(inputs)["pooled_output"]
        return self.output_dense(pooled)  # Dropout is the identity at inference.

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "label_names": self.label_names,
            }
        )
        return config
