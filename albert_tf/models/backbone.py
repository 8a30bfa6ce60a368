"""The generic base class of encoder backbones."""

import keras

from albert_tf.api_export import albert_tf_export
from albert_tf.presets.preset_api import BackbonePresetMixin


@albert_tf_export("albert_tf.models.Backbone")
class Backbone(BackbonePresetMixin, keras.Model):
    """Base class of functional encoder networks (keras-hub's `Backbone`).

    A backbone maps preprocessed integer tensors to dense features. Subclasses
    build their layers and functional graph in `__init__`, store each
    constructor argument under the same name and add them in `get_config`;
    `from_config` then simply calls the constructor.
    """

    def __init__(self, *args, dtype=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._initialized = True
        if dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)

    @property
    def token_embedding(self):
        """The `keras.layers.Embedding` that embeds token ids."""
        return getattr(self, "_token_embedding", None)

    @token_embedding.setter
    def token_embedding(self, value):
        self._token_embedding = value

    def get_config(self):
        # Functional configs describe the graph; ours are the constructor args.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        return cls(**config)
