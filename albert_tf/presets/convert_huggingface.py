"""Hugging Face `transformers` ALBERT checkpoints -> albert_tf.

Reads `config.json` + `model.safetensors` (or `pytorch_model.bin`, only
through `torch.load(weights_only=True)`; either may be sharded) of an
`AlbertModel` or `AlbertForSequenceClassification`. PyTorch `Linear` weights
are `[out, in]`; ours are `[in, out]` and attention kernels are split per
head (`[hidden, heads, head_dim]`), hence the transforms below.
"""

import json
import logging
import os

from albert_tf.presets.albert_config_keys import BACKBONE_KEYS
from albert_tf.presets.albert_config_keys import required_values
from albert_tf.presets.weight_assignment import WeightSpec

logger = logging.getLogger(__name__)

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
PYTORCH_FILE = "pytorch_model.bin"
PYTORCH_INDEX_FILE = "pytorch_model.bin.index.json"
INDEX_SUFFIX = ".index.json"
# In the order transformers prefers them; an index names shards beside it.
WEIGHT_FILES = (
    SAFETENSORS_FILE,
    SAFETENSORS_INDEX_FILE,
    PYTORCH_FILE,
    PYTORCH_INDEX_FILE,
)
VOCAB_FILE = "spiece.model"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

# HF `hidden_act` -> our backbone's `activation`, for the functions
# transformers computes there ("gelu_new" is the tanh GELU, "gelu" uses erf).
_ACTIVATIONS = {
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu": "gelu",
}


def convert_backbone_config(hf_config):
    """HF `AlbertConfig` dict -> `albert_tf.models.AlbertBackbone` kwargs.

    Args:
        hf_config: dict. A parsed HF `config.json`.

    Returns:
        dict of backbone constructor arguments.
    """
    model_type = hf_config.get("model_type")
    if model_type != "albert":
        raise ValueError(
            f"config.json has model_type={model_type!r}; only 'albert' "
            "checkpoints can be converted."
        )
    activation = hf_config.get("hidden_act", "gelu_new")
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"config.json has hidden_act={activation!r}; albert_tf implements "
            f"{sorted(_ACTIVATIONS)}."
        )
    position_type = hf_config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(
            f"config.json has position_embedding_type={position_type!r}; only "
            "'absolute' is supported."
        )
    epsilon = hf_config.get("layer_norm_eps", 1e-12)
    if epsilon != 1e-12:
        logger.warning(
            "config.json has layer_norm_eps=%g; AlbertBackbone uses 1e-12, as "
            "ALBERT and keras-hub do, so outputs differ slightly from "
            "transformers'.",
            epsilon,
        )
    required = {**BACKBONE_KEYS, "max_sequence_length": "max_position_embeddings"}
    return {
        **required_values(hf_config, required, "config.json"),
        "num_groups": hf_config.get("num_hidden_groups", 1),
        "num_inner_repetitions": hf_config.get("inner_group_num", 1),
        "dropout": hf_config.get("hidden_dropout_prob", 0.0),
        "num_segments": hf_config.get("type_vocab_size", 2),
        "activation": _ACTIVATIONS[activation],
    }


def _num_labels(hf_config):
    # transformers writes `id2label`, not `num_labels` (its length).
    return hf_config.get("num_labels", len(hf_config.get("id2label") or {}) or 2)


def convert_classifier_config(hf_config):
    """The classifier head of an `AlbertForSequenceClassification` config.

    Returns:
        dict with `num_classes`, `label_names` and `dropout`.
    """
    id2label = hf_config.get("id2label") or {}
    num_classes = _num_labels(hf_config)
    label_names = None
    if id2label:
        label_names = [
            id2label.get(str(i), id2label.get(i)) for i in range(num_classes)
        ]
        if any(name is None for name in label_names):
            raise ValueError(
                f"config.json id2label {id2label} does not name classes "
                f"0..{num_classes - 1}."
            )
    dropout = hf_config.get("classifier_dropout_prob", 0.1)
    return {"num_classes": num_classes, "label_names": label_names, "dropout": dropout}


def convert_tokenizer_config(tokenizer_config):
    """HF `tokenizer_config.json` -> our tokenizer's text preprocessing flags."""
    return {
        "lowercase": tokenizer_config.get("do_lower_case", True),
        "strip_accents": not tokenizer_config.get("keep_accents", False),
    }


def backbone_weight_specs(backbone, prefix=""):
    """The map: HF state-dict name -> our variable, with layout transforms.

    Args:
        backbone: `albert_tf.models.AlbertBackbone`.
        prefix: str. `"albert."` for task models, `""` for `AlbertModel`.

    Returns:
        list of `WeightSpec`.
    """
    b = backbone
    hidden, embed = b.hidden_dim, b.embedding_dim
    heads, inter = b.num_heads, b.intermediate_dim
    head_dim = hidden // heads
    p = prefix
    specs = [
        WeightSpec(
            f"{p}embeddings.word_embeddings.weight",
            b.token_embedding.embeddings,
            (b.vocabulary_size, embed),
        ),
        WeightSpec(
            f"{p}embeddings.position_embeddings.weight",
            b.position_embedding.position_embeddings,
            (b.max_sequence_length, embed),
        ),
        WeightSpec(
            f"{p}embeddings.token_type_embeddings.weight",
            b.segment_embedding.embeddings,
            (b.num_segments, embed),
        ),
        WeightSpec(
            f"{p}embeddings.LayerNorm.weight", b.embeddings_layer_norm.gamma, (embed,)
        ),
        WeightSpec(
            f"{p}embeddings.LayerNorm.bias", b.embeddings_layer_norm.beta, (embed,)
        ),
        WeightSpec(
            f"{p}encoder.embedding_hidden_mapping_in.weight",
            b.embeddings_projection.kernel,
            (hidden, embed),
            lambda w: w.T,
        ),
        WeightSpec(
            f"{p}encoder.embedding_hidden_mapping_in.bias",
            b.embeddings_projection.bias,
            (hidden,),
        ),
    ]
    for g, group in enumerate(b.transformer_layers):
        for i, block in enumerate(group):
            src = f"{p}encoder.albert_layer_groups.{g}.albert_layers.{i}."
            attention = block._self_attention_layer
            for name, dense in (
                ("query", attention._query_dense),
                ("key", attention._key_dense),
                ("value", attention._value_dense),
            ):
                specs += [
                    WeightSpec(
                        src + f"attention.{name}.weight",
                        dense.kernel,
                        (hidden, hidden),
                        lambda w: w.T.reshape(hidden, heads, head_dim),
                    ),
                    WeightSpec(
                        src + f"attention.{name}.bias",
                        dense.bias,
                        (hidden,),
                        lambda w: w.reshape(heads, head_dim),
                    ),
                ]
            specs += [
                WeightSpec(
                    src + "attention.dense.weight",
                    attention._output_dense.kernel,
                    (hidden, hidden),
                    lambda w: w.T.reshape(heads, head_dim, hidden),
                ),
                WeightSpec(
                    src + "attention.dense.bias",
                    attention._output_dense.bias,
                    (hidden,),
                ),
                WeightSpec(
                    src + "attention.LayerNorm.weight",
                    block._self_attention_layer_norm.gamma,
                    (hidden,),
                ),
                WeightSpec(
                    src + "attention.LayerNorm.bias",
                    block._self_attention_layer_norm.beta,
                    (hidden,),
                ),
                WeightSpec(
                    src + "ffn.weight",
                    block._feedforward_intermediate_dense.kernel,
                    (inter, hidden),
                    lambda w: w.T,
                ),
                WeightSpec(
                    src + "ffn.bias",
                    block._feedforward_intermediate_dense.bias,
                    (inter,),
                ),
                WeightSpec(
                    src + "ffn_output.weight",
                    block._feedforward_output_dense.kernel,
                    (hidden, inter),
                    lambda w: w.T,
                ),
                WeightSpec(
                    src + "ffn_output.bias",
                    block._feedforward_output_dense.bias,
                    (hidden,),
                ),
                WeightSpec(
                    src + "full_layer_layer_norm.weight",
                    block._feedforward_layer_norm.gamma,
                    (hidden,),
                ),
                WeightSpec(
                    src + "full_layer_layer_norm.bias",
                    block._feedforward_layer_norm.beta,
                    (hidden,),
                ),
            ]
    specs += [
        WeightSpec(
            f"{p}pooler.weight", b.pooled_dense.kernel, (hidden, hidden), lambda w: w.T
        ),
        WeightSpec(f"{p}pooler.bias", b.pooled_dense.bias, (hidden,)),
    ]
    return specs


def head_weight_specs(classifier):
    """The map for `AlbertForSequenceClassification`'s `classifier` layer."""
    dense = classifier.output_dense
    hidden, classes = dense.kernel.shape
    return [
        WeightSpec("classifier.weight", dense.kernel, (classes, hidden), lambda w: w.T),
        WeightSpec("classifier.bias", dense.bias, (classes,)),
    ]


def backbone_prefix(names):
    """`"albert."` if the state dict is a task model's, else `""`."""
    return "albert." if "albert.embeddings.word_embeddings.weight" in names else ""


def _load_safetensors(path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except TypeError as e:  # A dtype numpy lacks, i.e. bfloat16.
        try:
            from safetensors.torch import load_file as load_torch_file
        except ImportError:
            raise ValueError(
                f"'{path}' holds weights numpy cannot read ({e}); reading them "
                "needs torch, or save the checkpoint in float32."
            ) from None
        return {k: v.float().numpy() for k, v in load_torch_file(path).items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"'{path}' is not a valid safetensors file: {e}") from None


def _load_pytorch_bin(path):
    try:
        import torch
    except ImportError:
        raise ValueError(
            f"'{path}' is a PyTorch pickle and torch is not installed. albert_tf "
            "never unpickles with plain `pickle`; convert it to safetensors "
            "(`model.save_pretrained(dir, safe_serialization=True)`) or install "
            "torch to read it with `torch.load(weights_only=True)`."
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError/RuntimeError.
        raise ValueError(
            f"'{path}' could not be read with torch.load(weights_only=True): {e}"
        ) from None
    return {k: v.float().numpy() for k, v in state.items()}


def shard_names(index_path):
    """The shard files a sharded checkpoint's index names, beside the index."""
    with open(index_path, encoding="utf-8") as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    for shard in shards:
        if os.path.basename(shard) != shard:
            raise ValueError(f"{index_path}: shard name '{shard}' is not a file name.")
    return shards


def read_state_dict(directory):
    """All weights of an HF checkpoint directory as a dict of numpy arrays.

    Reads the first of `WEIGHT_FILES` present: safetensors, then PyTorch
    pickles (only with torch, `weights_only=True`), each whole or sharded.
    """
    for name in WEIGHT_FILES:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        load = _load_pytorch_bin if name.startswith(PYTORCH_FILE) else _load_safetensors
        if not name.endswith(INDEX_SUFFIX):
            return load(path)
        state = {}
        for shard in shard_names(path):
            state.update(load(os.path.join(directory, shard)))
        return state
    raise FileNotFoundError(
        f"No weights in '{directory}': expected {', '.join(WEIGHT_FILES[:-1])} "
        f"or {WEIGHT_FILES[-1]}."
    )


def is_classifier_checkpoint(hf_config):
    """Whether the checkpoint has a single-label (softmax) classification head.

    A regression or multi-label head is not one: the backbone is loaded alone,
    with a warning.
    """
    if "AlbertForSequenceClassification" not in (hf_config.get("architectures") or []):
        return False
    problem = hf_config.get("problem_type")
    if problem is None and _num_labels(hf_config) == 1:
        problem = "regression"  # What transformers infers.
    if problem in (None, "single_label_classification"):
        return True
    logger.warning(
        "config.json is a %s head (problem_type=%r, num_labels=%s); "
        "AlbertTextClassifier is a single-label softmax classifier, so only the "
        "backbone is loaded. Give the classifier `num_classes` to fine-tune a "
        "new head.",
        problem.replace("_", " "),
        problem,
        _num_labels(hf_config),
    )
    return False
