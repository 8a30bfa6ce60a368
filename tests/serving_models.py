"""Tiny classifiers and reference texts shared by the serving tests."""

import keras

from tests.helpers import spread_weights
from tests.helpers import tiny_backbone_kwargs

TEXTS = [
    "The quick brown fox jumped over the lazy dog.",
    "A dull film.",
    "Café, naïve and résumé have accents!",
    "I forgot my homework at home again, and 92000, numbers.",
    "ok",
]
PAIRS = [
    "What an amazing movie.",
    "The acting was good but the story was bad, truly bad and far too long.",
    "x",
    "He said ``hello''.",
    "Numbers like 1,000.",
]
LABEL_NAMES = ["negative", "positive", "neutral"]


def tiny_classifier(proto, seed=0, label_names=LABEL_NAMES, activation=None):
    """A randomly initialised 2-layer ALBERT classifier with its preprocessor.

    Its weights are spread (`spread_weights`) so that each text gets its own
    logits and a swapped or dropped text changes the outputs.
    """
    from albert_tf.models import AlbertBackbone
    from albert_tf.models import AlbertTextClassifier
    from albert_tf.models import AlbertTextClassifierPreprocessor
    from albert_tf.models import AlbertTokenizer

    keras.utils.set_random_seed(seed)
    tokenizer = AlbertTokenizer(proto=proto)
    preprocessor = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=16)
    backbone = AlbertBackbone(**tiny_backbone_kwargs(tokenizer.vocabulary_size()))
    classifier = AlbertTextClassifier(
        backbone,
        num_classes=len(label_names),
        preprocessor=preprocessor,
        label_names=label_names,
        activation=activation,
    )
    return spread_weights(classifier)
