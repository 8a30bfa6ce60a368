"""Loading a trained classifier from whatever a user points at."""

import os

import keras


def load_classifier(source, compile=False):
    """Loads a text classifier from a `.keras` file or a preset directory.

    Args:
        source: str. A `.keras` file written by `model.save()` (or
            `albert-tf train`), or a preset directory/handle accepted by
            `albert_tf.models.TextClassifier.from_preset`.
        compile: bool. Restore the training configuration of `.keras` files.

    Returns:
        An `albert_tf.models.TextClassifier` (with its preprocessor).
    """
    source = os.fspath(source)
    if source.endswith(".keras"):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"Model file not found: '{source}'.")
        return keras.saving.load_model(source, compile=compile)
    from albert_tf.models.text_classifier import TextClassifier

    if not hasattr(TextClassifier, "from_preset"):
        raise ValueError(
            f"Cannot load '{source}': expected a `.keras` file (preset "
            "directories need `from_preset`)."
        )
    return TextClassifier.from_preset(source)
