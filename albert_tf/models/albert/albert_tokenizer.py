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
        # Original ALBERT's digit-comma rule, as a table built once per
        # vocabulary: each rewritten piece -> the ids replacing it. The rule
        # depends on the piece alone, so the graph needs only gathers (a
        # second SentencePiece call per text cost a third of the tokenizer's
        # graph and of each `tf.data` iterator's start).
        pieces = self._vocabulary
        rewritten = [
            i
            for i, piece in enumerate(pieces)
            if len(piece) > 1 and piece[-1] == "," and piece[-2] in DIGIT_CHARS
        ]
        replacements = self._digit_comma_replacements([pieces[i] for i in rewritten])
        width = max(map(len, replacements), default=0)
        table = np.zeros([len(rewritten), width], np.int32)
        for row, ids in zip(table, replacements, strict=True):
            row[: len(ids)] = ids
        row_of_id = np.full(len(pieces), -1, np.int32)
        row_of_id[rewritten] = np.arange(len(rewritten))
        self._digit_comma_ids = np.array(rewritten, np.int32)
        self._digit_comma_table = table
        self._digit_comma_lengths = np.array(list(map(len, replacements)), np.int32)
        for array in (self._digit_comma_ids, table, self._digit_comma_lengths):
            array.setflags(write=False)  # Shared with TFLite builds.
        # Vocabulary-sized: one tensor that traces capture, not a constant each.
        self._digit_comma_row = tf.constant(row_of_id)

    def _digit_comma_replacements(self, pieces):
        """`▁92000,` -> the ids of `92000` re-split by SentencePiece, then `,`.

        As google-research/albert's `encode_pieces`: when the piece had no
        leading "▁", the one SentencePiece adds to the digits is dropped ("▁"
        alone) or stripped (a "▁"-prefixed piece).
        """
        if not pieces:
            return []
        digits = [piece[:-1].replace(SPIECE_UNDERLINE, "") for piece in pieces]
        # Plain SentencePiece (this tokenizer's op), no text preprocessing;
        # eager: `set_proto` runs this under `tf.init_scope`.
        resplit = super()._encode(tf.constant(digits)).to_list()
        comma = self.token_to_id(",")
        replacements = []
        for piece, ids in zip(pieces, resplit, strict=True):
            first = self._vocabulary[ids[0]] if ids else ""
            if not piece.startswith(SPIECE_UNDERLINE) and first[:1] == SPIECE_UNDERLINE:
                if first == SPIECE_UNDERLINE:
                    ids = ids[1:]
                else:
                    ids = [self.token_to_id(first[1:]), *ids[1:]]
            replacements.append([*ids, comma])
        return replacements

    def _split_digit_commas(self, ids):
        """Applies the digit-comma table to ragged ids (gathers only)."""
        width = self._digit_comma_table.shape[1]
        if not width:
            return ids
        flat = ids.flat_values
        row = tf.gather(self._digit_comma_row, flat)
        is_rewritten = row >= 0
        row = tf.maximum(row, 0)
        lengths = tf.where(is_rewritten, tf.gather(self._digit_comma_lengths, row), 1)
        replaced = tf.where(
            is_rewritten[:, tf.newaxis],
            tf.gather(self._digit_comma_table, row),
            flat[:, tf.newaxis],
        )
        values = tf.boolean_mask(replaced, tf.range(width) < lengths[:, tf.newaxis])
        ends = tf.concat([[0], tf.cumsum(tf.cast(lengths, tf.int64))], axis=0)
        return tf.RaggedTensor.from_row_splits(
            values, tf.gather(ends, ids.row_splits), validate=False
        )

    def _encode(self, inputs):
        inputs = preprocess_text(inputs, self.lowercase, self.strip_accents)
        return self._split_digit_commas(super()._encode(inputs))

    def get_config(self):
        config = super().get_config()
        config.update(
            {"lowercase": self.lowercase, "strip_accents": self.strip_accents}
        )
        return config
