"""Backbone keys of ALBERT's JSON configs: Google's names, which HF kept."""

BACKBONE_KEYS = {  # Ours -> theirs.
    "vocabulary_size": "vocab_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "embedding_dim": "embedding_size",
    "hidden_dim": "hidden_size",
    "intermediate_dim": "intermediate_size",
}


def required_values(config, names, file_name):
    """`{our_name: config[their_name]}`, naming every key the file lacks."""
    missing = [key for key in names.values() if key not in config]
    if missing:
        raise ValueError(
            f"{file_name} has no {', '.join(missing)}: an ALBERT config names "
            f"{', '.join(names.values())}."
        )
    return {ours: config[theirs] for ours, theirs in names.items()}
