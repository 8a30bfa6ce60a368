"""Original ALBERT's text preprocessing, as TensorFlow ops.

Mirrors `preprocess_text` of google-research/albert (and Hugging Face's slow
`AlbertTokenizer`): collapse whitespace, map ``/'' to ", NFKD plus removal of
combining marks, lowercase. The character classes come from Python's own
`str.isspace` and `unicodedata.combining`, so the graph agrees with the
reference implementation character for character.
"""

import sys
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text


def _char_class(predicate):
    """An RE2 character class of every code point for which `predicate` holds."""
    ranges, start, prev = [], None, None
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF or not predicate(chr(cp)):
            continue
        if start is not None and cp == prev + 1:
            prev = cp
            continue
        if start is not None:
            ranges.append((start, prev))
        start = prev = cp
    ranges.append((start, prev))
    parts = [
        f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges
    ]
    return "[" + "".join(parts) + "]"


WHITESPACE_CLASS = _char_class(str.isspace)
COMBINING_CLASS = _char_class(lambda c: unicodedata.combining(c) != 0)
DIGIT_CHARS = frozenset(
    chr(cp) for cp in range(sys.maxunicode + 1) if chr(cp).isdigit()
)


def preprocess_text(inputs, lowercase=True, strip_accents=True):
    """ALBERT text preprocessing of a batch of UTF-8 strings.

    Invalid UTF-8 bytes are replaced with U+FFFD first, so that any input gives
    a defined result.

    Args:
        inputs: string tensor of any shape.
        lowercase: bool. Lowercase (Unicode-aware, as Python's `str.lower`).
        strip_accents: bool. NFKD-decompose and drop combining marks.

    Returns:
        A string tensor of the same shape.
    """
    x = tf.strings.unicode_transcode(
        inputs, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    # " ".join(text.strip().split())
    x = tf.strings.regex_replace(x, WHITESPACE_CLASS + "+", " ")
    x = tf.strings.regex_replace(x, "^ | $", "")
    x = tf.strings.regex_replace(x, "``|''", '"')
    if strip_accents:
        x = tf_text.normalize_utf8(x, "NFKD")
        x = tf.strings.regex_replace(x, COMBINING_CLASS, "")
    if lowercase:
        x = _lower_keeping_nul(x)
    return x


def _lower_keeping_nul(x):
    """`tf.strings.lower(encoding="utf-8")`, which stops at a NUL, piecewise.

    Core ops on the split's flat output: a ragged split and `reduce_join`
    were 100 more graph nodes, and 40 ms more at every `tf.data` iterator's
    start.
    """
    flat = tf.reshape(x, [-1])
    indices, pieces, _ = tf.raw_ops.StringSplitV2(input=flat, sep="\x00")
    rows = indices[:, 0]
    # Re-append the NULs by hand: an op attribute (`separator=`) cannot hold one.
    is_last = tf.not_equal(rows, tf.concat([rows[1:], [-1]], axis=0))
    pieces = tf.strings.lower(pieces, encoding="utf-8") + tf.where(is_last, "", "\x00")
    joined = tf.strings.unsorted_segment_join(pieces, rows, tf.size(flat))
    return tf.reshape(joined, tf.shape(x))
