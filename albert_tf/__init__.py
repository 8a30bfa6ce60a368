"""albert-tf: ALBERT text classification on TensorFlow, from raw strings to logits."""

import tensorflow_text  # noqa: F401  (registers the tf-text ops SavedModels need)

from albert_tf import layers
from albert_tf import models
from albert_tf import tokenizers

__version__ = "0.1.0"
