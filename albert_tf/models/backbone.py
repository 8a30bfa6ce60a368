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

    def default_lora_layer_names(self):
        """Names of the layers `enable_lora` adapts by default: the query
        and value projections of every attention layer."""
        return ["query_dense", "value_dense", "query", "value"]

    def enable_lora(self, rank, target_layer_names=None):
        """Freezes the backbone and adds trainable rank-`rank` LoRA factors
        to the named layers (Hu et al. 2021), as keras-hub's `Backbone` does.

        Args:
            rank: int. The rank of each low-rank update.
            target_layer_names: list of str, or `None` for
                `default_lora_layer_names()`.
        """
        names = set(target_layer_names or self.default_lora_layer_names())
        self.trainable = True
        for layer in self._flatten_layers(include_self=False):
            layer.trainable = False
        self._lora_rank = rank
        self._lora_enabled_layers = []
        for index, layer in enumerate(self._layers_with_weights()):
            if layer.name in names and hasattr(layer, "enable_lora"):
                layer.trainable = True
                layer.enable_lora(rank)
                self._lora_enabled_layers.append(index)
        if not self._lora_enabled_layers:
            raise ValueError(
                f"No layer named {sorted(names)} can take LoRA (Dense or "
                "EinsumDense layers can)."
            )

    def save_lora_weights(self, filepath):
        """Writes the LoRA factors to `filepath` (`*.lora.h5`, keras-hub's
        layout), whole or not at all."""
        from keras.src.saving.saving_lib import H5IOStore

        from albert_tf.atomic_file import atomic_path

        if not getattr(self, "_lora_enabled_layers", None):
            raise ValueError("No LoRA layers to save: call `enable_lora(rank)` first.")
        if not str(filepath).endswith(".lora.h5"):
            raise ValueError(
                f"The file name must end in `.lora.h5`. Received: {filepath}"
            )
        layers = self._layers_with_weights()
        with atomic_path(str(filepath)) as tmp:
            store = H5IOStore(tmp, mode="w")
            try:
                store.make("lora")["rank"] = self._lora_rank
                # By index: layer names repeat across a model.
                for index in self._lora_enabled_layers:
                    entry = store.make(f"lora/{index}")
                    entry["lora_kernel_a"] = layers[index].lora_kernel_a
                    entry["lora_kernel_b"] = layers[index].lora_kernel_b
            finally:
                store.close()

    def load_lora_weights(self, filepath):
        """Loads LoRA factors saved by `save_lora_weights` (enabling LoRA at
        the file's rank first if needed)."""
        from keras.src.saving.saving_lib import H5IOStore

        store = H5IOStore(str(filepath), mode="r")
        try:
            rank = int(store.get("lora")["rank"][()])
            if not getattr(self, "_lora_enabled_layers", None):
                self.enable_lora(rank)
            elif self._lora_rank != rank:
                raise ValueError(
                    f"{filepath} holds rank-{rank} LoRA factors, but this "
                    f"backbone has rank {self._lora_rank} (`enable_lora`)."
                )
            layers = self._layers_with_weights()
            for index in self._lora_enabled_layers:
                entry = store.get(f"lora/{index}")
                layers[index].lora_kernel_a.assign(entry["lora_kernel_a"])
                layers[index].lora_kernel_b.assign(entry["lora_kernel_b"])
        finally:
            store.close()

    def _layers_with_weights(self):
        return [
            layer for layer in self._flatten_layers(include_self=False) if layer.weights
        ]

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
