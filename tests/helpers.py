"""Test helpers: tiny vocabularies and models."""

import io

import sentencepiece as spm

TINY_CORPUS = [
    "The quick brown fox jumped over the lazy dog.",
    "I forgot my homework at home again.",
    "What an amazing movie, truly wonderful acting!",
    "A dull, boring and far too long film.",
    "The acting was good but the story was bad.",
    "Numbers like 1,000 and 92000, appear here.",
    "Café, naïve and résumé have accents.",
    "He said ``hello'' and she said 'goodbye'.",
]


def train_tiny_sentencepiece(directory, vocab_size=80, **options):
    """Trains a tiny ALBERT-style SentencePiece model; returns its bytes.
    `options` go to the trainer (e.g. `remove_extra_whitespaces=False`)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        **options,
        sentence_iterator=iter(TINY_CORPUS * 4),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        user_defined_symbols="[CLS],[SEP],[MASK]",
        minloglevel=2,
    )
    path = directory / "tiny.spm"
    path.write_bytes(model.getvalue())
    return model.getvalue()


def tiny_backbone_kwargs(vocabulary_size=80, **overrides):
    kwargs = dict(
        vocabulary_size=vocabulary_size,
        num_layers=2,
        num_heads=2,
        embedding_dim=8,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
    )
    kwargs.update(overrides)
    return kwargs


def tiny_hf_albert_config(vocab_size=80, num_labels=None, **overrides):
    """A tiny `transformers.AlbertConfig` mirroring `tiny_backbone_kwargs`."""
    from transformers import AlbertConfig

    kwargs = dict(
        vocab_size=vocab_size,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_hidden_groups=1,
        inner_group_num=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout_prob=0.0,
        pad_token_id=0,
    )
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    kwargs.update(overrides)
    return AlbertConfig(**kwargs)


def padded_inputs(vocab_size=80, seed=0):
    """Two rows of ids, the second padded: the inputs of parity checks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, vocab_size, size=(2, 10)).astype("int32")
    padding_mask = np.ones((2, 10), "int32")
    padding_mask[1, 6:] = 0
    token_ids[1, 6:] = 0
    segment_ids = np.zeros((2, 10), "int32")
    segment_ids[0, 5:] = 1
    return {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "padding_mask": padding_mask,
    }


def spread_weights(model, factor=25.0):
    """Scales kernels and embeddings so a tiny random model's outputs vary.

    ALBERT's init (stddev 0.02) gives a tiny random model about the same
    logits for every text; larger weights make the outputs depend on the ids,
    so comparisons can catch a wrong token, a swapped text or a lost row.
    """
    for weight in model.weights:
        if weight.path.endswith(("kernel", "embeddings")):
            weight.assign(weight * factor)
    return model


# Peers' default init (zero biases, LayerNorm gamma=1 beta=0) hides bias and
# LayerNorm mapping mistakes in parity checks; these give every weight a value.
RANDOM_WEIGHT_STD = 0.2


def randomize_torch_weights(model, seed=0, std=RANDOM_WEIGHT_STD):
    """Every parameter of a torch model to seeded normals, in place.

    LayerNorm weights (gammas) are drawn around 1 so no feature is squashed.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(std=std, generator=generator)
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.add_(1.0)
    return model


def randomize_keras_weights(model, seed=0, std=RANDOM_WEIGHT_STD):
    """Every float weight of a built Keras model to seeded normals, in place.

    LayerNorm gammas are drawn around 1 so no feature is squashed.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if not np.issubdtype(np.dtype(variable.dtype), np.floating):
            continue
        value = std * rng.standard_normal(tuple(variable.shape))
        if variable.name == "gamma":
            value += 1.0
        variable.assign(value.astype(variable.dtype))
    return model


def dead_writers_temp_folder(parent, label):
    """A temp folder made by `owned_temp_folder` in a process that then ended
    without removing it, as a writer killed with `kill -9` leaves it."""
    import subprocess
    import sys

    from albert_tf import atomic_file

    # atomic_file imports nothing of albert_tf: load it alone, without TF.
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('a', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(module.owned_temp_folder(sys.argv[2], sys.argv[3]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, atomic_file.__file__, str(parent), label],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip()
