"""keras-hub ALBERT presets <-> albert_tf: config and weight name maps.

keras-hub writes `model.weights.h5` with Keras' own layout: one group per
layer, named after the layer *class* in graph order (`layers/dense`,
`layers/dense_1`, ...), then `vars/0`, `vars/1`. keras-hub's token embedding is
a `ReversibleEmbedding` while ours is a plain `Embedding`, so the group names
differ; the map below names every keras-hub path explicitly. albert_tf preset
directories use the same layout, so one map reads both and keras-hub can
read ours.
"""

import os

import h5py
import ml_dtypes
import numpy as np

from albert_tf.presets.weight_assignment import WeightSpec

# Keys of keras-hub's `AlbertBackbone` config that are also ours.
BACKBONE_CONFIG_KEYS = (
    "vocabulary_size",
    "num_layers",
    "num_heads",
    "embedding_dim",
    "hidden_dim",
    "intermediate_dim",
    "num_groups",
    "num_inner_repetitions",
    "dropout",
    "max_sequence_length",
    "num_segments",
)

# The Keras layer-group names of our backbone's layers and keras-hub's.
_GROUP_RENAMES = {
    "token_embedding": "reversible_embedding",
    "segment_embedding": "embedding",
}

_BLOCK_SUBLAYERS = (
    # (h5 sub-path, attribute chain on our TransformerEncoder, weight names)
    ("_self_attention_layer/query_dense", ("_self_attention_layer", "_query_dense")),
    ("_self_attention_layer/key_dense", ("_self_attention_layer", "_key_dense")),
    ("_self_attention_layer/value_dense", ("_self_attention_layer", "_value_dense")),
    ("_self_attention_layer/output_dense", ("_self_attention_layer", "_output_dense")),
    ("_self_attention_layer_norm", ("_self_attention_layer_norm",)),
    ("_feedforward_intermediate_dense", ("_feedforward_intermediate_dense",)),
    ("_feedforward_output_dense", ("_feedforward_output_dense",)),
    ("_feedforward_layer_norm", ("_feedforward_layer_norm",)),
)


def convert_backbone_config(keras_hub_config):
    """keras-hub `config.json` (serialized `AlbertBackbone`) -> our kwargs.

    Args:
        keras_hub_config: dict. The parsed `config.json` of a keras-hub (or
            albert_tf) preset.

    Returns:
        dict of `albert_tf.models.AlbertBackbone` constructor arguments.
    """
    class_name = keras_hub_config.get("class_name")
    if class_name != "AlbertBackbone":
        raise ValueError(
            f"config.json describes a '{class_name}', expected 'AlbertBackbone'."
        )
    config = keras_hub_config.get("config", {})
    missing = [k for k in BACKBONE_CONFIG_KEYS if k not in config]
    required = [
        k
        for k in missing
        if k
        not in (
            "num_groups",
            "num_inner_repetitions",
            "dropout",
            "max_sequence_length",
            "num_segments",
        )
    ]
    if required:
        raise ValueError(f"config.json lacks the AlbertBackbone fields {required}.")
    backbone_config = {k: config[k] for k in BACKBONE_CONFIG_KEYS if k in config}
    if "activation" in config:  # albert_tf presets only; keras-hub has none
        backbone_config["activation"] = config["activation"]
    return backbone_config


def _layer_weights(layer):
    """A layer's own variables in Keras' `vars/0..n` order."""
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def _specs_for_layer(group, layer):
    return [
        WeightSpec(f"{group}/vars/{i}", v, tuple(v.shape))
        for i, v in enumerate(_layer_weights(layer))
    ]


def backbone_weight_specs(backbone):
    """The map: keras-hub `model.weights.h5` dataset path -> our variable.

    Args:
        backbone: `albert_tf.models.AlbertBackbone`.

    Returns:
        list of `WeightSpec`.
    """
    specs = []
    specs += _specs_for_layer("layers/reversible_embedding", backbone.token_embedding)
    specs += _specs_for_layer("layers/position_embedding", backbone.position_embedding)
    specs += _specs_for_layer("layers/embedding", backbone.segment_embedding)
    specs += _specs_for_layer(
        "layers/layer_normalization", backbone.embeddings_layer_norm
    )
    specs += _specs_for_layer("layers/dense", backbone.embeddings_projection)
    blocks = [block for group in backbone.transformer_layers for block in group]
    for k, block in enumerate(blocks):
        name = "layers/transformer_encoder" + (f"_{k}" if k else "")
        for sub_path, attributes in _BLOCK_SUBLAYERS:
            layer = block
            for attribute in attributes:
                layer = getattr(layer, attribute)
            specs += _specs_for_layer(f"{name}/{sub_path}", layer)
    specs += _specs_for_layer("layers/dense_1", backbone.pooled_dense)
    return specs


def head_weight_specs(classifier):
    """The map for `task.weights.h5`: the classifier's dense head."""
    return _specs_for_layer("layers/dense", classifier.output_dense)


def h5_reader(path):
    """Reads every dataset of a `.weights.h5` file into a dict of arrays."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: '{path}'.")
    arrays = {}

    def read(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.attrs.get("dtype") == "bfloat16":
            # Keras stores bfloat16 as opaque bytes tagged by this attribute.
            arrays[name] = np.array(obj, dtype=ml_dtypes.bfloat16)
        else:
            arrays[name] = np.asarray(obj)

    try:
        with h5py.File(path, "r") as f:
            f.visititems(read)
    except OSError as e:
        raise ValueError(f"'{path}' is not a readable HDF5 weights file: {e}") from None
    return arrays


def rename_to_keras_hub_layout(path):
    """Renames our layer groups in a Keras-written `.weights.h5` in place.

    Keras names groups after layer classes; ours differ from keras-hub's only
    for the two `Embedding` layers. The group's `vars` attribute `name` holds
    our layer name, which tells them apart.
    """
    with h5py.File(path, "r+") as f:
        layers = f["layers"]
        by_layer_name = {
            layers[g]["vars"].attrs.get("name"): g
            for g in layers
            if "vars" in layers[g]
        }
        moves = [
            (by_layer_name[ours], theirs)
            for ours, theirs in _GROUP_RENAMES.items()
            if ours in by_layer_name
        ]
        for old, _ in moves:  # Two passes: the names overlap.
            layers.move(old, f"__{old}")
        for old, new in moves:
            layers.move(f"__{old}", new)


# albert_tf class -> (keras-hub module, config keys keras-hub's class accepts).
_KERAS_HUB_CLASSES = {
    "AlbertBackbone": (
        "keras_hub.src.models.albert.albert_backbone",
        ("name", "trainable", "dtype") + BACKBONE_CONFIG_KEYS,
    ),
    "AlbertTokenizer": (
        "keras_hub.src.models.albert.albert_tokenizer",
        ("name", "trainable", "dtype", "proto", "sequence_length"),
    ),
    "AlbertTextClassifierPreprocessor": (
        "keras_hub.src.models.albert.albert_text_classifier_preprocessor",
        ("name", "trainable", "dtype", "tokenizer", "sequence_length", "truncate"),
    ),
    "AlbertTextClassifier": (
        "keras_hub.src.models.albert.albert_text_classifier",
        ("backbone", "preprocessor", "name", "num_classes", "activation", "dropout"),
    ),
}


def to_keras_hub_config(config):
    """An albert_tf serialized config (nested) -> keras-hub's class names.

    Keys keras-hub's constructors do not take (`lowercase`, `strip_accents`,
    `fast`, `label_names`) are dropped: keras-hub's tokenizer feeds text to
    SentencePiece unchanged, so callers must lowercase themselves.

    Args:
        config: dict. A `keras.saving.serialize_keras_object` result.

    Returns:
        dict. The same structure, for `keras_hub.models.*.from_preset`.
    """
    if not isinstance(config, dict):
        return config
    registered = config.get("registered_name") or ""
    class_name = config.get("class_name")
    if registered.startswith("albert_tf>") and class_name in _KERAS_HUB_CLASSES:
        module, keys = _KERAS_HUB_CLASSES[class_name]
        inner = config.get("config", {})
        activation = inner.get("activation", "gelu_approximate")
        if class_name == "AlbertBackbone" and activation != "gelu_approximate":
            raise ValueError(
                f"This backbone uses activation={activation!r}; keras-hub's "
                "AlbertBackbone only computes the tanh-approximate GELU, so it "
                "would load these weights with another function. Save it in "
                "albert_tf's own preset format instead."
            )
        return {
            **config,
            "module": module,
            "registered_name": f"keras_hub>{class_name}",
            "config": {k: to_keras_hub_config(inner[k]) for k in keys if k in inner},
        }
    return {k: to_keras_hub_config(v) for k, v in config.items()}
