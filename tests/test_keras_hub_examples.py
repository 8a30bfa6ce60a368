"""keras-hub's AlbertTextClassifier docstring examples, run with albert_tf."""

import io

import numpy as np
import sentencepiece
import tensorflow as tf

import albert_tf


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
