"""Loading a trained classifier from whatever a user points at."""

import os
import warnings
import zipfile

import keras


def class_names(classifier):
    """The classifier's label names, or `"0"`, `"1"`, ... when it has none."""
    names = getattr(classifier, "label_names", None)
    return list(names) if names else [str(i) for i in range(classifier.num_classes)]


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
        if not zipfile.is_zipfile(source):  # Keras would say "File not found".
            raise ValueError(
                f"'{source}' is not a readable `.keras` file: it is not a zip "
                "archive (truncated, or not a Keras model)."
            )
        try:
            if compile:
                return keras.saving.load_model(source, compile=True)
            with warnings.catch_warnings():
                # The model compiles itself with a fresh optimizer; not restoring
                # the saved optimizer state is the point of `compile=False`.
                warnings.filterwarnings(
                    "ignore", "Skipping variable loading for optimizer"
                )
                return keras.saving.load_model(source, compile=False)
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            # A zip with damaged members: a CRC error, a cut-short weights
            # file or config.json, none of which names the model file.
            raise ValueError(f"Cannot load '{source}': {e}") from e
    from albert_tf.models.text_classifier import TextClassifier

    return TextClassifier.from_preset(source)
