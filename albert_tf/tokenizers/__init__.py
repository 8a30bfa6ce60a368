"""Tokenizer base classes."""

from albert_tf.tokenizers.sentence_piece_tokenizer import SentencePieceTokenizer
from albert_tf.tokenizers.tokenizer import Tokenizer
