"""The built-in ALBERT presets: configs, parameter counts and source handles.

The weights are keras-hub's Kaggle releases of the original Google ALBERT v2
checkpoints (uncased, 30k SentencePiece vocabulary).
"""

_COMMON = {
    "vocabulary_size": 30000,
    "embedding_dim": 128,
    "num_groups": 1,
    "num_inner_repetitions": 1,
    "dropout": 0.0,
    "max_sequence_length": 512,
    "num_segments": 2,
}


def _preset(description, params, handle, **config):
    return {
        "metadata": {
            "description": description,
            "params": params,
            "path": "albert",
        },
        "config": {**_COMMON, **config},
        "kaggle_handle": handle,
    }


BUILTIN_PRESETS = {
    "albert_base_en_uncased": _preset(
        "12-layer ALBERT base v2, lowercased input. Wikipedia + BooksCorpus.",
        11683584,
        "kaggle://keras/albert/keras/albert_base_en_uncased/5",
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        intermediate_dim=3072,
    ),
    "albert_large_en_uncased": _preset(
        "24-layer ALBERT large v2, lowercased input. Wikipedia + BooksCorpus.",
        17683968,
        "kaggle://keras/albert/keras/albert_large_en_uncased/3",
        num_layers=24,
        num_heads=16,
        hidden_dim=1024,
        intermediate_dim=4096,
    ),
    "albert_extra_large_en_uncased": _preset(
        "24-layer ALBERT xlarge v2, lowercased input. Wikipedia + BooksCorpus.",
        58724864,
        "kaggle://keras/albert/keras/albert_extra_large_en_uncased/3",
        num_layers=24,
        num_heads=16,
        hidden_dim=2048,
        intermediate_dim=8192,
    ),
    "albert_extra_extra_large_en_uncased": _preset(
        "12-layer ALBERT xxlarge v2, lowercased input. Wikipedia + BooksCorpus.",
        222595584,
        "kaggle://keras/albert/keras/albert_extra_extra_large_en_uncased/3",
        num_layers=12,
        num_heads=64,
        hidden_dim=4096,
        intermediate_dim=16384,
    ),
}


def count_backbone_params(config):
    """Parameters of an `AlbertBackbone` with this config, without building it.

    Args:
        config: dict of `AlbertBackbone` constructor arguments.

    Returns:
        int.
    """
    config = {
        "num_groups": 1,
        "num_inner_repetitions": 1,
        "max_sequence_length": 512,
        "num_segments": 2,
        **config,
    }  # The constructor's defaults.
    embed, hidden = config["embedding_dim"], config["hidden_dim"]
    inter = config["intermediate_dim"]
    embeddings = (
        (
            config["vocabulary_size"]
            + config["max_sequence_length"]
            + config["num_segments"]
        )
        * embed
        + 2 * embed  # Layer norm.
        + embed * hidden
        + hidden  # Projection to the hidden width.
    )
    block = (
        4 * (hidden * hidden + hidden)  # Query, key, value, output.
        + 2 * (2 * hidden)  # Two layer norms.
        + hidden * inter
        + inter
        + inter * hidden
        + hidden
    )
    blocks = config["num_groups"] * config["num_inner_repetitions"] * block
    pooler = hidden * hidden + hidden
    return embeddings + blocks + pooler
