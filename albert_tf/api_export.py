"""One decorator that registers every serializable albert_tf class."""

import keras


def albert_tf_export(path):
    """Registers a class with Keras serialization under package `albert_tf`.

    Args:
        path: str. The public import path, e.g. `"albert_tf.models.AlbertBackbone"`.
            Kept for documentation; the registered name is the class name.
    """

    def decorator(symbol):
        symbol._albert_tf_export_path = path
        return keras.saving.register_keras_serializable(package="albert_tf")(symbol)

    return decorator
