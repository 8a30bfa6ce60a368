"""ALBERT's SentencePiece tokenizer with original ALBERT text preprocessing."""

import numpy as np
import tensorflow as tf

from albert_tf.api_export import albert_tf_export
from albert_tf.models.albert.albert_text_preprocessing import DIGIT_CHARS
from albert_tf.models.albert.albert_text_preprocessing import preprocess_text
from albert_tf.tokenizers.sentence_piece_tokenizer import SentencePieceTokenizer

SPIECE_UNDERLINE = "\u2581"


@albert_tf_export("albert_tf.models.AlbertTokenizer")
class AlbertTokenizer(SentencePieceTokenizer):
    """ALBERT tokenizer: original ALBERT preprocessing, then SentencePiece.

    Everything runs as TensorFlow ops (tensorflow-text), so the tokenizer
    works in `tf.data`, `tf.function` and exported SavedModels. Before
    SentencePiece, the text is preprocessed as in google-research/albert and
    Hugging Face's `AlbertTokenizer`: whitespace collapsed, `` and '' mapped to
    ", accents stripped (NFKD, combining marks removed), lowercased. After it,
    original ALBERT's digit-comma rule re-splits a piece such as `▁9,` into
    the digits and `,`. The resulting ids equal Hugging Face's slow
    `AlbertTokenizer(do_lower_case=True, keep_accents=False)`, with two
    exceptions: literal "[MASK]", "[SEP]", "<pad>"... in the text stay text, as
    in original ALBERT (HF with `split_special_tokens=True`), and the regular
    op can split equal-score ties the other way (see `fast`).

    Unlike keras-hub's `AlbertTokenizer`, which feeds text to SentencePiece
    unchanged, "The Quick" and "the quick" give the same ids with the
    uncased vocabulary.

    Args:
        proto: str, path-like or bytes. The SentencePiece model (ALBERT's
            `spiece.model`/`30k-clean.model`), or `None` to set it later.
        lowercase: bool. Lowercase the text first. Defaults to `True`.
        strip_accents: bool. Strip accents first. Defaults to `True`.
        fast: bool. Use `FastSentencepieceTokenizer` (has TFLite kernels);
            the ids are identical except between equal-score splits (see
            `SentencePieceTokenizer`).
        sequence_length: int. If set, pad or truncate outputs to this length.

    Example:
    ```python
    tokenizer = albert_tf.models.AlbertTokenizer(proto="spiece.model")
    tokenizer("The quick brown fox.")
    tokenizer.detokenize(tokenizer(["The quick brown fox."]))
    ```
    """

    def __init__(
        self,
        proto=None,
        lowercase=True,
        strip_accents=True,
        fast=False,
        sequence_length=None,
        **kwargs,
    ):
        # The vocabulary is loaded last, once special tokens are declared.
        super().__init__(
            proto=None, sequence_length=sequence_length, fast=fast, **kwargs
        )
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self._add_special_token("[CLS]", "cls_token")
        self._add_special_token("[SEP]", "sep_token")
        self._add_special_token("<pad>", "pad_token")
        self._add_special_token("<unk>", "unk_token")
        self._add_special_token("[MASK]", "mask_token")
        # keras-hub aliases.
        self.start_token, self.end_token = self.cls_token, self.sep_token
        self.start_token_id = self.end_token_id = None
        self.set_proto(proto)

    def _update_special_token_ids(self):
        super()._update_special_token_ids()
        self.start_token_id = self.cls_token_id
        self.end_token_id = self.sep_token_id

    def _on_proto_set(self, processor):
        # Lookup tables for the digit-comma rule, built once from the model so
        # that the graph needs only gathers (which TFLite supports too).
        pieces = self._vocabulary
        size = len(pieces)
        split_index = np.full(size, -1, np.int32)
        stripped, keeps_underline = [], []
        for i, piece in enumerate(pieces):
            if len(piece) > 1 and piece[-1] == "," and piece[-2] in DIGIT_CHARS:
                split_index[i] = len(stripped)
                stripped.append(piece[:-1].replace(SPIECE_UNDERLINE, ""))
                keeps_underline.append(piece[0] == SPIECE_UNDERLINE)
        without_underline = np.array(
            [
                self.token_to_id(p[1:]) if p.startswith(SPIECE_UNDERLINE) else i
                for i, p in enumerate(pieces)
            ],
            np.int32,
        )
        starts_with_underline = np.array(
            [p.startswith(SPIECE_UNDERLINE) for p in pieces], bool
        )
        self._split_index = tf.constant(split_index)
        self._split_texts = tf.constant(stripped or [""], tf.string)
        self._split_keeps_underline = tf.constant(keeps_underline or [True])
        self._without_underline = tf.constant(without_underline)
        self._starts_with_underline = tf.constant(starts_with_underline)
        self._underline_id = self.token_to_id(SPIECE_UNDERLINE)
        self._comma_id = self.token_to_id(",")

    def _split_digit_commas(self, ids):
        """Original ALBERT's rule: `▁92000,` -> pieces of `92000`, then `,`.

        Written on flat tensors and row splits (no ragged concat or gather),
        which keeps the graph small: every export, `tf.data` map and TFLite
        build traces it.
        """
        flat = ids.flat_values
        split_index = tf.gather(self._split_index, flat)
        is_match = split_index >= 0
        match_tokens = tf.reshape(tf.where(is_match), [-1])  # Token positions.
        match = tf.gather(split_index, match_tokens)
        # Plain SentencePiece on the digits, without text preprocessing.
        sub = super()._encode(tf.gather(self._split_texts, match))
        values, splits = sub.flat_values, sub.row_splits
        rows = sub.value_rowids()
        is_first = tf.equal(
            tf.range(tf.size(values, out_type=tf.int64)), tf.gather(splits, rows)
        )
        # If the original piece had no leading "▁", drop the one SentencePiece
        # adds to the re-split digits ("▁" alone, or as a prefix).
        fix = tf.logical_and(
            is_first,
            tf.logical_and(
                tf.logical_not(
                    tf.gather(self._split_keeps_underline, tf.gather(match, rows))
                ),
                tf.gather(self._starts_with_underline, values),
            ),
        )
        keep = tf.logical_not(tf.logical_and(fix, tf.equal(values, self._underline_id)))
        values = tf.where(fix, tf.gather(self._without_underline, values), values)
        # Each token becomes its own id, or its kept sub-pieces and a comma.
        # (Cumulative sums and gathers only: TFLite has builtins for them.)
        kept_before = tf.concat([[0], tf.cumsum(tf.cast(keep, tf.int64))], 0)
        row_starts = tf.gather(kept_before, splits[:-1])
        kept = tf.gather(kept_before, splits[1:]) - row_starts
        values = tf.boolean_mask(values, keep)
        rows = tf.boolean_mask(rows, keep)
        counts = 1 + tf.scatter_nd(
            tf.expand_dims(match_tokens, 1), kept, tf.shape(flat, out_type=tf.int64)
        )
        ends = tf.cumsum(counts)
        starts = ends - counts
        sub_positions = (
            tf.gather(starts, tf.gather(match_tokens, rows))
            + tf.range(tf.size(values, out_type=tf.int64))
            - tf.gather(row_starts, rows)
        )
        single_tokens = tf.reshape(tf.where(tf.logical_not(is_match)), [-1])
        positions = tf.concat(
            [
                tf.gather(starts, single_tokens),
                sub_positions,
                tf.gather(ends, match_tokens) - 1,  # The comma.
            ],
            axis=0,
        )
        updates = tf.concat(
            [
                tf.gather(flat, single_tokens),
                values,
                tf.fill(tf.shape(match_tokens), tf.constant(self._comma_id, tf.int32)),
            ],
            axis=0,
        )
        total = tf.reduce_sum(counts)
        out = tf.scatter_nd(
            tf.expand_dims(positions, 1), updates, tf.reshape(total, [1])
        )
        new_splits = tf.gather(tf.concat([[0], ends], 0), ids.row_splits)
        return tf.RaggedTensor.from_row_splits(out, new_splits, validate=False)

    def _encode(self, inputs):
        inputs = preprocess_text(inputs, self.lowercase, self.strip_accents)
        return self._split_digit_commas(super()._encode(inputs))

    def get_config(self):
        config = super().get_config()
        config.update(
            {"lowercase": self.lowercase, "strip_accents": self.strip_accents}
        )
        return config
