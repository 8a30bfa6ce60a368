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


def train_tiny_sentencepiece(directory, vocab_size=80):
    """Trains a tiny ALBERT-style SentencePiece model; returns its bytes."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
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
