"""A SentencePiece tokenizer that runs inside the TensorFlow graph."""

import hashlib
import os

import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops.sentencepiece_tokenizer import (
    gen_sentencepiece_tokenizer,
)

from albert_tf.api_export import albert_tf_export
from albert_tf.tokenizers.tokenizer import Tokenizer

VOCAB_FILENAME = "vocabulary.spm"


class _SharedModelResource(tf.saved_model.experimental.TrackableResource):
    """The SentencePiece model resource, under a shared name.

    tf-text creates it kernel-owned (b/318839908): anything that clears the
    eager kernel cache, such as `tf.random.set_seed` or
    `keras.utils.set_random_seed`, deletes the model and every later call fails
    with "Resource ..._SentencepieceOp does not exist". A resource with a
    `shared_name` lives in the resource manager instead and survives that.
    """

    def __init__(self, model):
        super().__init__()
        self._model = model
        self._shared_name = "albert_tf_spm_" + hashlib.sha256(model).hexdigest()[:16]
        _ = self.resource_handle  # Create it now, as tf-text does.

    def _create_resource(self):
        return gen_sentencepiece_tokenizer.sentencepiece_op(
            model=self._model, shared_name=self._shared_name
        )


class _SentencepieceTokenizer(tf_text.SentencepieceTokenizer):
    """`tf_text.SentencepieceTokenizer` on a `_SharedModelResource`."""

    def __init__(self, model):
        super().__init__(model=model, out_type=tf.int32)
        self._model_resource = _SharedModelResource(model)


def read_proto(proto):
    """Returns SentencePiece model bytes from a path or bytes, checked.

    Raises a `ValueError` naming the file when it is not a SentencePiece model.
    """
    source = "the given bytes"
    if isinstance(proto, os.PathLike):
        proto = os.fspath(proto)
    if isinstance(proto, str):
        source = proto
        if not os.path.isfile(proto):
            raise FileNotFoundError(f"SentencePiece model file not found: '{proto}'.")
        with open(proto, "rb") as f:
            proto = f.read()
    if not isinstance(proto, bytes):
        raise TypeError(
            "`proto` must be a path to a SentencePiece model or its bytes. "
            f"Received: {type(proto).__name__}."
        )
    try:
        processor = spm.SentencePieceProcessor(model_proto=proto)
    except Exception as e:  # sentencepiece raises bare RuntimeError/OSError.
        raise ValueError(
            f"{source} is not a valid SentencePiece model ({len(proto)} bytes): {e}"
        ) from None
    return proto, processor


@albert_tf_export("albert_tf.tokenizers.SentencePieceTokenizer")
class SentencePieceTokenizer(Tokenizer):
    """In-graph SentencePiece tokenizer (tensorflow-text).

    The vocabulary is an asset, not config: `get_config()` holds
    `proto: None` and the model bytes are written by `save_assets` as
    `vocabulary.spm` (keras-hub's layout), so `.keras` files and SavedModels
    carry them.

    Args:
        proto: str, path-like or bytes. A SentencePiece model file or its
            serialized bytes. `None` defers loading to `load_assets`/`set_proto`.
        sequence_length: int. If set, outputs are padded or truncated to this
            length and returned dense; otherwise outputs are ragged.
        fast: bool. Use `tf_text.FastSentencepieceTokenizer`, the variant with
            TFLite kernels, instead of `tf_text.SentencepieceTokenizer`. Both
            give identical ids except between two equal-score splits (e.g.
            "e"+"ee" and "ee"+"e" in "eee"), where the fast one agrees with
            the Python `sentencepiece` package and the regular one does not.
        dtype: string. Output dtype of the ids.

    Example:
    ```python
    tokenizer = albert_tf.tokenizers.SentencePieceTokenizer(proto="spiece.model")
    tokenizer(["the quick brown fox."])
    ```
    """

    def __init__(
        self,
        proto=None,
        sequence_length=None,
        fast=False,
        dtype="int32",
        **kwargs,
    ):
        super().__init__(dtype=dtype, **kwargs)
        self.sequence_length = sequence_length
        self.fast = fast
        self.proto = None
        self.set_proto(proto)

    def set_proto(self, proto):
        """Loads a SentencePiece model (path or bytes); `None` unsets it."""
        if proto is None:
            self.proto = None
            self._sentence_piece = None
            self._vocabulary = None
            return
        proto, processor = read_proto(proto)
        self.proto = proto
        self._vocabulary = [processor.id_to_piece(i) for i in range(len(processor))]
        self._token_to_id_map = {piece: i for i, piece in enumerate(self._vocabulary)}
        self._unk_token_id = processor.unk_id()
        self._update_special_token_ids()
        # Resources and tables outlive any trace this is called from.
        with tf.init_scope():
            self._sentence_piece = self._make_tf_tokenizer(proto)
            self._on_proto_set(processor)

    def _make_tf_tokenizer(self, proto):
        if self.fast:
            return tf_text.FastSentencepieceTokenizer(proto)
        return _SentencepieceTokenizer(proto)

    def _on_proto_set(self, processor):
        """Hook for subclasses that derive lookup tables from the model."""

    def save_assets(self, dir_path):
        with open(os.path.join(dir_path, VOCAB_FILENAME), "wb") as f:
            f.write(self.proto)

    def load_assets(self, dir_path):
        self.set_proto(os.path.join(dir_path, VOCAB_FILENAME))

    def _check_vocabulary(self):
        if self.proto is None:
            raise ValueError(
                f"No vocabulary has been set for `{self.__class__.__name__}`. "
                "Pass `proto=` (a SentencePiece model path or bytes)."
            )

    def vocabulary_size(self):
        self._check_vocabulary()
        return len(self._vocabulary)

    def get_vocabulary(self):
        self._check_vocabulary()
        return list(self._vocabulary)

    def id_to_token(self, id):
        self._check_vocabulary()
        if not 0 <= id < len(self._vocabulary):
            raise ValueError(
                f"`id` must be in range [0, {len(self._vocabulary) - 1}]. "
                f"Received: {id}"
            )
        return self._vocabulary[id]

    def token_to_id(self, token):
        self._check_vocabulary()
        if isinstance(token, bytes):
            token = token.decode("utf-8")
        return self._token_to_id_map.get(token, self._unk_token_id)

    def _encode(self, inputs):
        """Strings [batch] -> ragged int32 ids [batch, None], int64 row splits."""
        ids = tf.cast(self._sentence_piece.tokenize(inputs), tf.int32)
        return ids.with_row_splits_dtype(tf.int64)

    def tokenize(self, inputs):
        self._check_vocabulary()
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype != tf.string:
            raise TypeError(
                f"`{self.__class__.__name__}` takes strings. Received dtype "
                f"{inputs.dtype.name}."
            )
        if inputs.shape.rank not in (0, 1):
            raise ValueError(
                "Tokenizer input must be a string scalar or a batch of strings "
                f"of rank 1. Received shape {inputs.shape}."
            )
        unbatched = inputs.shape.rank == 0
        if unbatched:
            inputs = tf.expand_dims(inputs, 0)
        ids = self._encode(inputs)
        if self.sequence_length:
            ids = ids.to_tensor(shape=[None, self.sequence_length])
        if self.compute_dtype == "string":  # The pieces, as keras-hub gives them.
            ids = tf.gather(tf.constant(self._vocabulary), ids)
        else:
            ids = tf.cast(ids, self.compute_dtype)
        if unbatched:
            ids = ids[0]
        return ids

    def detokenize(self, inputs):
        """Ids (one id, a sequence, or a batch of sequences: a tensor, a
        ragged tensor or nested lists of different lengths) -> text."""
        self._check_vocabulary()
        if isinstance(inputs, (list, tuple)) and any(
            isinstance(row, (list, tuple)) for row in inputs
        ):
            inputs = tf.ragged.constant(inputs)
        elif not isinstance(inputs, tf.RaggedTensor):
            inputs = tf.convert_to_tensor(inputs)
        rank = inputs.shape.rank
        for _ in range(2 - rank):
            inputs = inputs[tf.newaxis]
        outputs = self._sentence_piece.detokenize(tf.cast(inputs, tf.int32))
        return outputs[0] if rank < 2 else outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "proto": None,  # An asset, saved by `save_assets`.
                "sequence_length": self.sequence_length,
                "fast": self.fast,
            }
        )
        return config
