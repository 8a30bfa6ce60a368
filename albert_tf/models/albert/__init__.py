"""The ALBERT model family."""

from albert_tf.models.albert.albert_backbone import AlbertBackbone
from albert_tf.models.albert.albert_text_classifier import AlbertTextClassifier
from albert_tf.models.albert.albert_text_classifier_preprocessor import (
    AlbertTextClassifierPreprocessor,
)
from albert_tf.models.albert.albert_tokenizer import AlbertTokenizer
