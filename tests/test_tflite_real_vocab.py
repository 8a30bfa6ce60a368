"""TFLite string-in builds vs the Keras model on SST-2 dev, real ALBERT vocabulary."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf import tflite
from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer
from tests.helpers import tiny_backbone_kwargs

# Long enough that no SST-2 dev sentence is truncated (the longest has ~70
# pieces), so every id of every sentence is compared.
IDS_LENGTH = 128


@pytest.fixture(scope="module")
def tokenizer(spiece_model_path):
    return AlbertTokenizer(proto=spiece_model_path)


@pytest.mark.slow
def test_tflite_ids_equal_foundation_ids_on_sst2_dev(tokenizer, sst2_dev_sentences):
    extra = [
        "I was born in 92000, and this is falsé.",  # Digit-comma rule, accents.
        "1,000,000 and 9, then 12a, too",
        "He said ``Hello'' to the CAFÉ \u00a0 crowd\t\n  .",
        "Ｆｕｌｌｗｉｄｔｈ ﬁne ½ naïve",
        "",
    ]
    # Rewritten pieces before, across and after the cut at IDS_LENGTH - 2.
    extra += ["the " * k + "92000, 9, 1,000, 9," for k in range(116, 126)]
    texts = list(sst2_dev_sentences) + extra
    preprocessor = AlbertTextClassifierPreprocessor(tokenizer, IDS_LENGTH)
    expected = preprocessor(tf.constant(texts))
    model = tflite.TFLiteClassifier(tflite.convert_tokenizer(tokenizer, IDS_LENGTH))
    got = model.run(text=np.array(texts, dtype=object))
    for key in ("token_ids", "segment_ids", "padding_mask"):
        differing = np.flatnonzero((got[key] != expected[key].numpy()).any(-1))
        assert differing.size == 0, (
            f"{key} differ on {differing.size} of {len(texts)} texts, e.g. "
            f"{texts[differing[0]]!r}"
        )
    # No sentence was truncated, so the comparison covered every piece.
    padding = expected["padding_mask"].numpy()[: len(sst2_dev_sentences)]
    assert (padding[:, -1] == 0).all()


@pytest.mark.slow
def test_float32_text_build_matches_keras_on_sst2_dev(tokenizer, sst2_dev_sentences):
    keras.utils.set_random_seed(0)  # Also seeds Keras initializers.
    preprocessor = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=32)
    backbone = AlbertBackbone(
        **tiny_backbone_kwargs(
            vocabulary_size=tokenizer.vocabulary_size(), max_sequence_length=32
        )
    )
    classifier = AlbertTextClassifier(
        backbone, num_classes=2, preprocessor=preprocessor
    )
    # Larger than ALBERT's init so the logits depend on the ids (see test_tflite).
    for weight in classifier.weights:
        if weight.path.endswith(("kernel", "embeddings")):
            weight.assign(weight * 25.0)
    content = tflite.convert(classifier, tflite.none(), input_kind="text")
    # Equal-score splits, which the build's fast op splits the other way from
    # the Keras model's regular one: the check compares like with like.
    ties = ["eee", "an eee of a film"]
    fast = AlbertTokenizer(proto=tokenizer.proto, fast=True)
    assert tokenizer(ties).to_list() != fast(ties).to_list()
    texts = list(sst2_dev_sentences) + ties
    result = tflite.verify(classifier, content, texts, quantized=False)
    assert result.examples == 874
    assert result.max_abs_logit_diff <= 1e-4, result.summary()
    logits = classifier.predict(list(sst2_dev_sentences[:50]), verbose=0)
    assert np.ptp(logits, axis=0).max() > 0.1, "outputs ignore the input"


@pytest.mark.slow
def test_app_tokenization_recipe_equals_the_keras_preprocessor(
    spiece_model_path, sst2_dev_sentences
):
    """The documented app-side recipe for ids builds, against Keras's ids."""
    import sentencepiece as spm

    from albert_tf.tflite import app_tokenization
    from tests.test_albert_tokenizer import HARD_CASES

    # The fast op is the one apps' SentencePiece libraries agree with on
    # equal-score ties ("eee"); see AlbertTokenizer's `fast`.
    fast = AlbertTokenizer(proto=spiece_model_path, fast=True)
    processor = spm.SentencePieceProcessor(model_file=spiece_model_path)
    length = 24  # Short: long texts and pairs are trimmed too.
    texts = list(sst2_dev_sentences) + HARD_CASES
    seconds = texts[1:] + texts[:1]
    special = (fast.cls_token_id, fast.sep_token_id, fast.pad_token_id)
    for pairs in (None, seconds):
        preprocessor = AlbertTextClassifierPreprocessor(fast, length)
        inputs = (
            tf.constant(texts)
            if pairs is None
            else (tf.constant(texts), tf.constant(pairs))
        )
        expected = preprocessor(inputs)
        for i, text in enumerate(texts):
            ids_b = None
            if pairs is not None:
                ids_b = app_tokenization.encode(processor, pairs[i])
            got = app_tokenization.pack(
                app_tokenization.encode(processor, text), ids_b, length, *special
            )
            for key, values in zip(
                ("token_ids", "segment_ids", "padding_mask"), got, strict=True
            ):
                assert values == expected[key][i].numpy().tolist(), (key, text[:60])
