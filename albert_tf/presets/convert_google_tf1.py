"""Original Google ALBERT checkpoints (google-research/albert) -> albert_tf.

The release layout is `albert_config.json`, `model.ckpt-<step>.{index,data-*}`
(TF1 variable names under `bert/`) and `30k-clean.model`. A TF1 TF-Hub module
(`tfhub_module.pb`, `variables/variables.*`, `assets/30k-clean.model`) loads
too once the release's `albert_config.json` is put beside it. TF1 kernels are
already `[in, out]`; attention kernels are split per head for Keras'
`MultiHeadAttention`. Every group is mapped, not only `group_0`.
"""

import glob
import os

import tensorflow as tf

from albert_tf.presets.albert_config_keys import BACKBONE_KEYS
from albert_tf.presets.albert_config_keys import required_values
from albert_tf.presets.weight_assignment import WeightSpec

CONFIG_FILE = "albert_config.json"
VOCAB_FILES = ("30k-clean.model", "spiece.model")
HUB_MODULE_FILE = "tfhub_module.pb"
HUB_CHECKPOINT = os.path.join("variables", "variables")  # A SavedModel's.
HUB_ASSETS_DIR = "assets"


def convert_backbone_config(albert_config):
    """`albert_config.json` dict -> `albert_tf.models.AlbertBackbone` kwargs."""
    activation = albert_config.get("hidden_act", "gelu")
    if activation != "gelu":
        raise ValueError(
            f"{CONFIG_FILE} has hidden_act={activation!r}; original ALBERT uses "
            "'gelu' (its tanh approximation), the only one supported."
        )
    return {
        **required_values(albert_config, BACKBONE_KEYS, CONFIG_FILE),
        "num_groups": albert_config.get("num_hidden_groups", 1),
        "num_inner_repetitions": albert_config.get("inner_group_num", 1),
        "dropout": albert_config.get("hidden_dropout_prob", 0.0),
        "max_sequence_length": albert_config.get("max_position_embeddings", 512),
        "num_segments": albert_config.get("type_vocab_size", 2),
    }


def backbone_weight_specs(backbone, prefix=""):
    """The map: TF1 variable name -> our variable.

    Args:
        backbone: `albert_tf.models.AlbertBackbone`.
        prefix: str. `"module/"` for TF-Hub exports, else `""`.

    Returns:
        list of `WeightSpec`.
    """
    b = backbone
    hidden, embed = b.hidden_dim, b.embedding_dim
    heads, inter = b.num_heads, b.intermediate_dim
    head_dim = hidden // heads
    p = prefix + "bert/"
    specs = [
        WeightSpec(
            p + "embeddings/word_embeddings",
            b.token_embedding.embeddings,
            (b.vocabulary_size, embed),
        ),
        WeightSpec(
            p + "embeddings/position_embeddings",
            b.position_embedding.position_embeddings,
            (b.max_sequence_length, embed),
        ),
        WeightSpec(
            p + "embeddings/token_type_embeddings",
            b.segment_embedding.embeddings,
            (b.num_segments, embed),
        ),
        WeightSpec(
            p + "embeddings/LayerNorm/gamma", b.embeddings_layer_norm.gamma, (embed,)
        ),
        WeightSpec(
            p + "embeddings/LayerNorm/beta", b.embeddings_layer_norm.beta, (embed,)
        ),
        WeightSpec(
            p + "encoder/embedding_hidden_mapping_in/kernel",
            b.embeddings_projection.kernel,
            (embed, hidden),
        ),
        WeightSpec(
            p + "encoder/embedding_hidden_mapping_in/bias",
            b.embeddings_projection.bias,
            (hidden,),
        ),
    ]
    for g, group in enumerate(b.transformer_layers):
        for i, block in enumerate(group):
            src = f"{p}encoder/transformer/group_{g}/inner_group_{i}/"
            attention = block._self_attention_layer
            for name, dense in (
                ("query", attention._query_dense),
                ("key", attention._key_dense),
                ("value", attention._value_dense),
            ):
                specs += [
                    WeightSpec(
                        src + f"attention_1/self/{name}/kernel",
                        dense.kernel,
                        (hidden, hidden),
                        lambda w: w.reshape(hidden, heads, head_dim),
                    ),
                    WeightSpec(
                        src + f"attention_1/self/{name}/bias",
                        dense.bias,
                        (hidden,),
                        lambda w: w.reshape(heads, head_dim),
                    ),
                ]
            specs += [
                WeightSpec(
                    src + "attention_1/output/dense/kernel",
                    attention._output_dense.kernel,
                    (hidden, hidden),
                    lambda w: w.reshape(heads, head_dim, hidden),
                ),
                WeightSpec(
                    src + "attention_1/output/dense/bias",
                    attention._output_dense.bias,
                    (hidden,),
                ),
                WeightSpec(
                    src + "LayerNorm/gamma",
                    block._self_attention_layer_norm.gamma,
                    (hidden,),
                ),
                WeightSpec(
                    src + "LayerNorm/beta",
                    block._self_attention_layer_norm.beta,
                    (hidden,),
                ),
                WeightSpec(
                    src + "ffn_1/intermediate/dense/kernel",
                    block._feedforward_intermediate_dense.kernel,
                    (hidden, inter),
                ),
                WeightSpec(
                    src + "ffn_1/intermediate/dense/bias",
                    block._feedforward_intermediate_dense.bias,
                    (inter,),
                ),
                WeightSpec(
                    src + "ffn_1/intermediate/output/dense/kernel",
                    block._feedforward_output_dense.kernel,
                    (inter, hidden),
                ),
                WeightSpec(
                    src + "ffn_1/intermediate/output/dense/bias",
                    block._feedforward_output_dense.bias,
                    (hidden,),
                ),
                WeightSpec(
                    src + "LayerNorm_1/gamma",
                    block._feedforward_layer_norm.gamma,
                    (hidden,),
                ),
                WeightSpec(
                    src + "LayerNorm_1/beta",
                    block._feedforward_layer_norm.beta,
                    (hidden,),
                ),
            ]
    specs += [
        WeightSpec(p + "pooler/dense/kernel", b.pooled_dense.kernel, (hidden, hidden)),
        WeightSpec(p + "pooler/dense/bias", b.pooled_dense.bias, (hidden,)),
    ]
    return specs


def head_weight_specs(classifier):
    """`run_classifier.py`'s head: `output_weights` `[classes, hidden]`."""
    dense = classifier.output_dense
    hidden, classes = dense.kernel.shape
    return [
        WeightSpec("output_weights", dense.kernel, (classes, hidden), lambda w: w.T),
        WeightSpec("output_bias", dense.bias, (classes,)),
    ]


def find_checkpoint(directory):
    """The checkpoint prefix in a release directory (the newest step), or a
    TF-Hub module's `variables/variables`."""
    state = tf.train.get_checkpoint_state(directory)
    if state and state.model_checkpoint_path:
        prefix = state.model_checkpoint_path
        if not os.path.isabs(prefix):
            prefix = os.path.join(directory, prefix)
        if os.path.isfile(prefix + ".index"):
            return prefix
    indexes = glob.glob(os.path.join(glob.escape(directory), "*.ckpt*.index"))
    if not indexes:
        hub_checkpoint = os.path.join(directory, HUB_CHECKPOINT)
        if os.path.isfile(hub_checkpoint + ".index"):
            return hub_checkpoint
        raise FileNotFoundError(
            f"No TF checkpoint in '{directory}': expected model.ckpt-*.index "
            f"(or a TF-Hub module's {HUB_CHECKPOINT}.index)."
        )

    def step(path):
        digits = path[: -len(".index")].rsplit("-", 1)[-1]
        return int(digits) if digits.isdigit() else -1

    return max(indexes, key=step)[: -len(".index")]


def checkpoint_reader(prefix):
    """`name -> array` reader over a TF checkpoint, plus its variable names."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise ValueError(f"Cannot read TF checkpoint '{prefix}': {e}") from None
    names = set(reader.get_variable_to_shape_map())

    def read(name):
        return reader.get_tensor(name) if name in names else None

    return read, names


def variable_prefix(names):
    """`"module/"` for TF-Hub exports of the release, else `""`."""
    return "module/" if "module/bert/embeddings/word_embeddings" in names else ""


def find_vocabulary(directory):
    """The SentencePiece model of a release, or of a TF-Hub module's assets."""
    for folder in (directory, os.path.join(directory, HUB_ASSETS_DIR)):
        for name in VOCAB_FILES:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(
        f"No SentencePiece model in '{directory}' or its {HUB_ASSETS_DIR}/: "
        f"expected one of {list(VOCAB_FILES)}."
    )
