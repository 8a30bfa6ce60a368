"""keras-hub's AlbertTextClassifier docstring examples, run with albert_tf."""

import io

import keras
import numpy as np
import pytest
import sentencepiece
import tensorflow as tf

import albert_tf
from tests.helpers import tiny_backbone_kwargs


def test_custom_backbone_and_vocabulary_example():
    # Verbatim from keras-hub, with `keras_hub` replaced by `albert_tf`.
    features = ["The quick brown fox jumped.", "I forgot my homework."]
    labels = [0, 3]

    bytes_io = io.BytesIO()
    ds = tf.data.Dataset.from_tensor_slices(features)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=ds.as_numpy_iterator(),
        model_writer=bytes_io,
        vocab_size=10,
        model_type="WORD",
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        pad_piece="<pad>",
        unk_piece="<unk>",
        bos_piece="[CLS]",
        eos_piece="[SEP]",
        user_defined_symbols="[MASK]",
    )
    tokenizer = albert_tf.models.AlbertTokenizer(
        proto=bytes_io.getvalue(),
    )
    preprocessor = albert_tf.models.AlbertTextClassifierPreprocessor(
        tokenizer=tokenizer,
        sequence_length=128,
    )
    backbone = albert_tf.models.AlbertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=4,
        num_heads=4,
        hidden_dim=256,
        embedding_dim=128,
        intermediate_dim=512,
        max_sequence_length=128,
    )
    classifier = albert_tf.models.AlbertTextClassifier(
        backbone=backbone,
        preprocessor=preprocessor,
        num_classes=4,
    )
    classifier.fit(x=features, y=labels, batch_size=2)

    assert classifier.predict(features, verbose=0).shape == (2, 4)
    assert np.isfinite(classifier.evaluate(features, labels, verbose=0)[0])


@pytest.fixture(scope="module")
def local_preset(tmp_path_factory, tiny_proto):
    """A small preset directory standing in for "albert_base_en_uncased" (offline)."""
    tokenizer = albert_tf.models.AlbertTokenizer(proto=tiny_proto)
    backbone = albert_tf.models.AlbertBackbone(
        **tiny_backbone_kwargs(vocabulary_size=tokenizer.vocabulary_size())
    )
    preprocessor = albert_tf.models.AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=16
    )
    path = tmp_path_factory.mktemp("preset") / "albert_tiny_en_uncased"
    backbone.save_to_preset(str(path))
    preprocessor.save_to_preset(str(path))
    return str(path)


def test_raw_string_data_example(local_preset):
    # keras-hub's first example; the built-in preset name becomes a local preset.
    features = ["The quick brown fox jumped.", "I forgot my homework."]
    labels = [0, 3]

    # Pretrained classifier.
    classifier = albert_tf.models.AlbertTextClassifier.from_preset(
        local_preset,
        num_classes=4,
    )
    classifier.fit(x=features, y=labels, batch_size=2)
    classifier.predict(x=features, batch_size=2)

    # Re-compile (e.g., with a new learning rate).
    classifier.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=keras.optimizers.Adam(5e-5),
        jit_compile=True,
    )
    # Access backbone programmatically (e.g., to change `trainable`).
    classifier.backbone.trainable = False
    # Fit again.
    classifier.fit(x=features, y=labels, batch_size=2)

    assert classifier.predict(x=features, batch_size=2, verbose=0).shape == (2, 4)


def test_preprocessed_integer_data_example(local_preset):
    features = {
        "token_ids": np.ones(shape=(2, 12), dtype="int32"),
        "segment_ids": np.array([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]] * 2),
        "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]] * 2),
    }
    labels = [0, 3]

    # Pretrained classifier without preprocessing.
    classifier = albert_tf.models.AlbertTextClassifier.from_preset(
        local_preset,
        num_classes=4,
        preprocessor=None,
    )
    classifier.fit(x=features, y=labels, batch_size=2)

    assert classifier.preprocessor is None
    assert classifier.predict(features, verbose=0).shape == (2, 4)
