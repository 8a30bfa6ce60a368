"""ALBERT tokenization and packing built only from ops that TFLite can run.

The foundation `AlbertTokenizer` normalises text with regex, NFKD and
lowercasing ops and builds ragged tensors; none of these have TFLite kernels.
This module builds a graph that gives the same ids from TFLite builtins plus
one tf-text custom op:

1. ALBERT's text preprocessing is folded into the SentencePiece model's own
   normalisation map (`precompiled_charsmap`), which
   `FastSentencepieceTokenizer` applies inside its TFLite kernel. The map is
   computed by running the foundation's `preprocess_text` on every assigned
   code point (and on every multi-character key of the original map), then
   the original SentencePiece normalisation on the result.
2. The digit-comma rule uses the foundation tokenizer's own lookup table
   (vocabulary id -> the ids it is replaced by), matched by comparison
   rather than a vocabulary-sized gather.
3. Truncation to `[CLS] ... [SEP]` and padding use dense gathers. Each
   text is cut to its first `sequence_length - 2` pieces before step 2
   (the rule only adds pieces), so no step's work grows with the text.
"""

import functools
import logging
import sys
import unicodedata

import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text
from sentencepiece import sentencepiece_model_pb2

from albert_tf.models.albert.albert_text_preprocessing import preprocess_text
from albert_tf.native_logs import native_info_dropped

logger = logging.getLogger(__name__)

# Unassigned, private-use and surrogate code points pass through every step.
_SKIPPED_CATEGORIES = ("Cn", "Co", "Cs")
# ALBERT maps these pairs to '"' before any other step (see preprocess_text).
_QUOTE_PAIRS = ("``", "''")


@functools.lru_cache(maxsize=4)  # ~2 s per model; builds of all modes share it.
def fuse_albert_preprocessing(proto, lowercase=True, strip_accents=True):
    """Returns a SentencePiece model whose normaliser includes ALBERT's.

    Feeding raw text to the returned model gives the same pieces as feeding
    `preprocess_text(text)` to the original model, for every input that does
    not depend on context beyond the quote pairs and whitespace runs (checked
    on SST-2 by the tests).

    Args:
        proto: bytes. The original SentencePiece model.
        lowercase: bool. Fold ALBERT's lowercasing in.
        strip_accents: bool. Fold ALBERT's accent stripping in.

    Returns:
        The serialized SentencePiece model (bytes).
    """
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    original = spm.SentencePieceNormalizer(
        normalizer_spec=model.normalizer_spec.SerializeToString(),
        add_dummy_prefix=False,
        escape_whitespaces=False,
        remove_extra_whitespaces=False,
    )
    # Whitespace runs and quote pairs depend on context: map them by hand
    # (SentencePiece itself collapses runs of spaces afterwards).
    chars = [
        chr(cp)
        for cp in range(1, sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) not in _SKIPPED_CATEGORIES
        and not chr(cp).isspace()
    ]
    multi = [
        key
        for key, _ in original.Decompile()
        if len(key) > 1
        and "\0" not in key
        and not any(c.isspace() or c in "`'" for c in key)
    ]
    keys = chars + multi
    preprocessed = preprocess_text(tf.constant(keys), lowercase, strip_accents)
    mapping = {
        key: original.Normalize(value.decode("utf-8"))
        for key, value in zip(keys, preprocessed.numpy(), strict=True)
    }
    for cp in range(1, sys.maxunicode + 1):
        if chr(cp).isspace():
            mapping[chr(cp)] = " "
    for pair in _QUOTE_PAIRS:
        mapping[pair] = original.Normalize('"')
    rules = sorted((k, v) for k, v in mapping.items() if k != v)
    logger.info(
        "Folding %d normalisation rules into the SentencePiece model.", len(rules)
    )
    with native_info_dropped():  # SentencePiece's builder logs INFO lines.
        normalizer = spm.SentencePieceNormalizer(norm_map=rules)
    spec = sentencepiece_model_pb2.NormalizerSpec()
    spec.ParseFromString(normalizer.serialized_normalizer_spec())
    model.normalizer_spec.precompiled_charsmap = spec.precompiled_charsmap
    # ALBERT's preprocessing collapses and strips whitespace whatever the
    # vocabulary says; whitespace runs are mapped to spaces above for this.
    model.normalizer_spec.remove_extra_whitespaces = True
    model.normalizer_spec.name = "albert_preprocessing+" + model.normalizer_spec.name
    return model.SerializeToString()


def digit_comma_table(tokenizer):
    """The foundation tokenizer's digit-comma rule, as its own table.

    Args:
        tokenizer: `albert_tf.models.AlbertTokenizer`.

    Returns:
        `(ids, table, lengths)`: int32 `[S]` the vocabulary ids the rule
        rewrites (141 of ALBERT's 30,000), int32 `[S, K]` the ids each is
        replaced by (padded with 0; `[0, 0]` when `S` is 0) and int32 `[S]` how
        many of them are used. Read-only.
    """
    # The tokenizer applies this very table, so the two cannot drift apart.
    ids = tokenizer._digit_comma_ids
    logger.info(
        "Digit-comma rule rewrites %d of %d pieces.",
        ids.size,
        tokenizer.vocabulary_size(),
    )
    return ids, tokenizer._digit_comma_table, tokenizer._digit_comma_lengths


class TFLiteTextPacker(tf.Module):
    """Strings -> ALBERT model inputs, with TFLite builtins + FastSentencepiece.

    Gives the same `token_ids` as `AlbertTextClassifierPreprocessor` with
    the same tokenizer for one segment per example.

    Args:
        tokenizer: `albert_tf.models.AlbertTokenizer` (its vocabulary and
            `lowercase`/`strip_accents` settings are used).
        sequence_length: int. Length of the packed inputs.

    Example:
    ```python
    packer = TFLiteTextPacker(preprocessor.tokenizer, sequence_length=128)
    packer(tf.constant(["The quick brown fox."]))["token_ids"]
    ```
    """

    def __init__(self, tokenizer, sequence_length, name=None):
        super().__init__(name=name)
        if sequence_length < 2:
            raise ValueError(
                f"`sequence_length` must be at least 2 ([CLS] and [SEP]). "
                f"Received: {sequence_length}"
            )
        self.sequence_length = sequence_length
        self.proto = fuse_albert_preprocessing(
            tokenizer.proto, tokenizer.lowercase, tokenizer.strip_accents
        )
        self.sentence_piece = tf_text.FastSentencepieceTokenizer(self.proto)
        # Only the rewritten pieces are stored (a table over the whole
        # vocabulary would add ~0.6 MB to every file).
        ids, table, lengths = digit_comma_table(tokenizer)
        self.rewritten_ids = tf.constant(ids) if ids.size else None
        self.table = tf.constant(table)
        self.lengths = tf.constant(lengths)
        self.cls_id = tokenizer.cls_token_id
        self.sep_id = tokenizer.sep_token_id
        self.pad_id = tokenizer.pad_token_id

    def tokenize(self, text, max_pieces=None):
        """`[batch]` strings -> `(flat ids [n], row splits [batch + 1])`, int32.

        Args:
            text: string `[batch]`.
            max_pieces: int or `None`. Keep only the first `max_pieces`
                pieces of each row, before the digit-comma rule: it only
                adds pieces, so the first `max_pieces` ids it gives are the
                same, and its work stays bounded however long the text is.
        """
        pieces = self.sentence_piece.tokenize(text)
        flat = tf.cast(pieces.flat_values, tf.int32)
        splits = tf.cast(pieces.row_splits, tf.int32)
        if max_pieces is not None:
            rows, kept = self._first_pieces(flat, splits, max_pieces)
            flat = tf.boolean_mask(rows, tf.range(max_pieces) < kept[:, tf.newaxis])
            splits = tf.concat([[0], tf.cumsum(kept)], axis=0)
        if self.rewritten_ids is None:
            return flat, splits
        # Digit-comma rule: a rewritten piece becomes its row of the table,
        # any other piece a row of its own id followed by unused padding.
        matches = tf.equal(flat[:, tf.newaxis], self.rewritten_ids[tf.newaxis, :])
        is_rewritten = tf.reduce_any(matches, axis=1)
        row = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int32)
        width = self.table.shape[1]
        unchanged = tf.pad(flat[:, tf.newaxis], [[0, 0], [0, width - 1]])
        rows = tf.where(
            is_rewritten[:, tf.newaxis], tf.gather(self.table, row), unchanged
        )
        lengths = tf.where(is_rewritten, tf.gather(self.lengths, row), 1)
        keep = tf.range(width)[tf.newaxis, :] < lengths[:, tf.newaxis]
        flat = tf.boolean_mask(rows, keep)
        ends = tf.concat([[0], tf.cumsum(lengths)], axis=0)
        return flat, tf.gather(ends, splits)

    def _first_pieces(self, flat, splits, count):
        """The first `count` ids of each row: `(int32 [batch, count] padded
        with the pad id, int32 [batch] how many are real)`."""
        starts = splits[:-1]
        kept = tf.minimum(splits[1:] - starts, count)
        position = tf.range(count)[tf.newaxis, :]
        # The appended pad makes every gather index valid, even for an empty
        # batch or an empty last row.
        source = tf.minimum(starts[:, tf.newaxis] + position, tf.size(flat))
        pieces = tf.gather(tf.concat([flat, [self.pad_id]], axis=0), source)
        return tf.where(position < kept[:, tf.newaxis], pieces, self.pad_id), kept

    def __call__(self, text):
        """`[batch]` strings -> dict of int32 `[batch, sequence_length]`."""
        length = self.sequence_length - 2  # Pieces between [CLS] and [SEP].
        flat, splits = self.tokenize(text, max_pieces=length)
        rows, kept = self._first_pieces(flat, splits, length)
        column = tf.ones_like(kept)[:, tf.newaxis]
        # `[CLS] pieces... pad`, then [SEP] after the last real piece.
        pieces = tf.concat([self.cls_id * column, rows, self.pad_id * column], axis=1)
        position = tf.range(self.sequence_length)[tf.newaxis, :]
        kept = kept[:, tf.newaxis]
        token_ids = tf.where(position == kept + 1, self.sep_id, pieces)
        return {
            "token_ids": token_ids,
            "segment_ids": tf.zeros_like(token_ids),
            "padding_mask": tf.cast(position <= kept + 1, tf.int32)
            + tf.zeros_like(token_ids),
        }
