"""What an app does before an ids-in build, in plain Python: the port target.

An ids-in `.tflite` file takes `token_ids`, `segment_ids` and `padding_mask`;
the app makes them with a SentencePiece library and the build's `OUT.spm`.
This module is that recipe using only `sentencepiece` and `unicodedata`, so a
Kotlin or Swift port can follow it line by line; the tests check it against
the Keras preprocessor (which the TFLite text builds match too).
"""

import unicodedata

SPIECE_UNDERLINE = "\u2581"


def preprocess(text, lowercase=True, strip_accents=True):
    """Original ALBERT's text preprocessing (see `AlbertTokenizer`)."""
    text = " ".join(text.split())  # Python's whitespace: str.isspace.
    text = text.replace("``", '"').replace("''", '"')
    if strip_accents:
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    if lowercase:
        text = text.lower()  # Locale-free (Kotlin: lowercase(Locale.ROOT)).
    return text


def encode(processor, text, lowercase=True, strip_accents=True):
    """Token ids of one text: preprocessing, SentencePiece, the digit-comma rule.

    Args:
        processor: `sentencepiece.SentencePieceProcessor` of `OUT.spm`.
        text: str.
        lowercase, strip_accents: bool. `OUT.json`'s settings.

    Returns:
        list of int.
    """
    pieces = []
    for piece in processor.encode(
        preprocess(text, lowercase, strip_accents), out_type=str
    ):
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            # Original ALBERT: "▁92000," -> pieces of "92000", then ",".
            digits = processor.encode(
                piece[:-1].replace(SPIECE_UNDERLINE, ""), out_type=str
            )
            if piece[0] != SPIECE_UNDERLINE and digits[0][0] == SPIECE_UNDERLINE:
                digits = (
                    digits[1:] if len(digits[0]) == 1 else [digits[0][1:]] + digits[1:]
                )
            pieces += digits + [","]
        else:
            pieces.append(piece)
    return [processor.piece_to_id(piece) for piece in pieces]


def pack(ids_a, ids_b, sequence_length, cls_id, sep_id, pad_id):
    """`[CLS] a [SEP] (b [SEP])`, trimmed round-robin, padded: the three inputs.

    Returns:
        `(token_ids, segment_ids, padding_mask)`, lists of `sequence_length`.
    """
    budget = sequence_length - (2 if ids_b is None else 3)
    if ids_b is None:
        ids_a = ids_a[:budget]
    else:  # One token from each text in turn, the first text first.
        keep_a = min(len(ids_a), max((budget + 1) // 2, budget - len(ids_b)))
        ids_a, ids_b = ids_a[:keep_a], ids_b[: budget - keep_a]
    tokens = [cls_id] + ids_a + [sep_id]
    segments = [0] * len(tokens)
    if ids_b is not None:
        tokens += ids_b + [sep_id]
        segments += [1] * (len(ids_b) + 1)
    padding = sequence_length - len(tokens)
    return (
        tokens + [pad_id] * padding,
        segments + [0] * padding,
        [1] * len(tokens) + [0] * padding,
    )
