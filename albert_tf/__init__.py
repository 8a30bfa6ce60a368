"""albert-tf: ALBERT text classification on TensorFlow, from raw strings to logits."""

import importlib

from albert_tf.native_logs import import_tensorflow_quietly

import_tensorflow_quietly()  # Also registers the tf-text ops SavedModels need.

# After TensorFlow is imported quietly.
from albert_tf import layers  # noqa: E402
from albert_tf import models  # noqa: E402
from albert_tf import tokenizers  # noqa: E402

__version__ = "0.1.0"

# Loaded on first use (`albert_tf.training.train(...)` after `import albert_tf`).
_SUBPACKAGES = ("presets", "serving", "tflite", "training")


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"albert_tf.{name}")
    raise AttributeError(f"module 'albert_tf' has no attribute {name!r}")
