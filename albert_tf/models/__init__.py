"""Public model API: `albert_tf.models.*`."""

from albert_tf.models.albert.albert_backbone import AlbertBackbone
from albert_tf.models.albert.albert_text_classifier import AlbertTextClassifier
from albert_tf.models.albert.albert_text_classifier_preprocessor import (
    AlbertTextClassifierPreprocessor,
)
from albert_tf.models.albert.albert_tokenizer import AlbertTokenizer
from albert_tf.models.backbone import Backbone
from albert_tf.models.loading import class_names
from albert_tf.models.loading import load_classifier
from albert_tf.models.preprocessor import Preprocessor
from albert_tf.models.task import Task
from albert_tf.models.text_classifier import TextClassifier
from albert_tf.models.text_classifier_preprocessor import TextClassifierPreprocessor
from albert_tf.tokenizers.tokenizer import Tokenizer
