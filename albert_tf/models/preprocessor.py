"""The generic base class of preprocessing layers."""

import keras

from albert_tf.api_export import albert_tf_export
from albert_tf.presets.preset_api import PreprocessorPresetMixin


@albert_tf_export("albert_tf.models.Preprocessor")
class Preprocessor(PreprocessorPresetMixin, keras.layers.Layer):
    """Base class of layers that turn raw inputs into model inputs.

    A preprocessor owns a tokenizer and runs TensorFlow ops only, so it can be
    mapped over a `tf.data.Dataset` or traced into a SavedModel. Subclasses
    set `backbone_cls` and `tokenizer_cls`.
    """

    backbone_cls = None
    tokenizer_cls = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def get_config(self):
        config = super().get_config()
        config["tokenizer"] = keras.layers.serialize(self.tokenizer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("tokenizer"), dict):
            config["tokenizer"] = keras.layers.deserialize(config["tokenizer"])
        return cls(**config)
