"""The generic base class of text classification preprocessors."""

import collections
import hashlib
import json
import threading
import weakref

import keras
import numpy as np
import tensorflow as tf

from albert_tf.api_export import albert_tf_export
from albert_tf.layers.multi_segment_packer import TRUNCATE_MODES
from albert_tf.layers.multi_segment_packer import MultiSegmentPacker
from albert_tf.models.preprocessor import Preprocessor

# `dataset_function()`s of albert_tf's own preprocessors by (class,
# settings, vocabulary), newest last: a new preprocessor with the same
# settings (a new model, each `train()` run) reuses the trace. Each holds a
# copy of its layer (about 20 MB with ALBERT's vocabulary), so few are kept.
_shared_functions = collections.OrderedDict()
_SHARED_FUNCTIONS_KEPT = 4
_shared_functions_lock = threading.Lock()
# Other classes' (a subclass may hold state outside its config): per
# preprocessor, weakly keyed, with the settings traced for.
_own_functions = weakref.WeakKeyDictionary()


@albert_tf_export("albert_tf.models.TextClassifierPreprocessor")
class TextClassifierPreprocessor(Preprocessor):
    """Tokenizes one text or a pair and packs them for a text classifier.

    Args:
        tokenizer: a `albert_tf.tokenizers.Tokenizer` with `start_token_id`,
            `end_token_id` and `pad_token_id`.
        sequence_length: int. Length of the packed sequences.
        truncate: str. `"round_robin"` or `"waterfall"`.
        text_pairs: bool or None. `True`: every input must be a pair (the
            model was trained on pairs), `False`: single texts only, `None`
            (default): either. `albert-tf train` sets it from the data, so
            a model trained on pairs refuses single texts instead of
            silently scoring them.

    Call arguments:
        x: strings, one text per example (a tensor, array or list), or a
            tuple of two of those for sentence pairs. A scalar string gives
            unbatched outputs.
        y: labels, passed through unchanged.
        sample_weight: passed through unchanged.
        sequence_length: int. Overrides `sequence_length` for this call.
        pad_to_longest: bool. Pad to the longest text of the batch (capped at
            `sequence_length`) instead of always to `sequence_length`.

    Returns:
        `x` as a dict of `token_ids`, `segment_ids`, `padding_mask`, packed
        with `y` and `sample_weight` as Keras expects
        (`keras.utils.pack_x_y_sample_weight`).
    """

    def __init__(
        self,
        tokenizer,
        sequence_length=512,
        truncate="round_robin",
        text_pairs=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if text_pairs not in (None, True, False):
            raise ValueError(
                f"`text_pairs` must be True, False or None. Received: {text_pairs!r}"
            )
        self.packer = None
        self.tokenizer = tokenizer
        self.truncate = truncate
        self.text_pairs = text_pairs
        self.sequence_length = sequence_length

    def _build_packer(self):
        # Lazily: a reloaded tokenizer learns its special ids from its assets.
        self.packer = MultiSegmentPacker(
            sequence_length=self.sequence_length,
            start_value=self.tokenizer.start_token_id,
            end_value=self.tokenizer.end_token_id,
            pad_value=self.tokenizer.pad_token_id,
            truncate=self.truncate,
            name="packer",
        )

    def _sync_special_ids(self):
        # A vocabulary set after the first call may number them otherwise.
        self.packer.start_value = self.tokenizer.start_token_id
        self.packer.end_value = self.tokenizer.end_token_id
        self.packer.pad_value = self.tokenizer.pad_token_id

    @property
    def truncate(self):
        """`"round_robin"` or `"waterfall"`."""
        return self._truncate

    @truncate.setter
    def truncate(self, value):
        if value not in TRUNCATE_MODES:
            raise ValueError(
                f"`truncate` must be one of {TRUNCATE_MODES}. Received: {value!r}"
            )
        self._truncate = value
        if self.packer is not None:
            self.packer.truncate = value

    @property
    def sequence_length(self):
        """The padded length of model input sequences."""
        return self._sequence_length

    @sequence_length.setter
    def sequence_length(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(
                f"`sequence_length` must be an int. Received: {value!r} "
                f"({type(value).__name__})"
            )
        if value < 2:
            raise ValueError(
                f"`sequence_length` must be at least 2 ([CLS] and [SEP]). "
                f"Received: {value}"
            )
        self._sequence_length = int(value)
        if self.packer is not None:
            self.packer.sequence_length = value

    def call(
        self, x, y=None, sample_weight=None, sequence_length=None, pad_to_longest=False
    ):
        if self.packer is None:
            self._build_packer()
        self._sync_special_ids()
        # A tuple is a pair of texts; anything else (a list too) is a batch.
        segments = x if isinstance(x, tuple) else (x,)
        self._check_segments(segments)
        segments = tuple(self.tokenizer(segment) for segment in segments)
        token_ids, segment_ids = self.packer(
            segments, sequence_length=sequence_length, pad_to_longest=pad_to_longest
        )
        x = {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": keras.ops.cast(
                token_ids != self.tokenizer.pad_token_id, "int32"
            ),
        }
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def dataset_function(self):
        """This layer as a `tf.function` for `tf.data.Dataset.map`.

        `dataset.map(preprocessor)` traces the tokenizer's graph again for
        every dataset: about 0.4 s of CPU that each `predict`/`evaluate`
        call paid, and a sixth of a tiny `train()` run. The function
        returned here is traced once per input structure and kept. For
        albert_tf's own classes it is shared by every preprocessor of the
        class with the same config and vocabulary, and runs a copy made from
        them (what saving and loading would give): changing this layer
        afterwards leaves it alone and gets another one. Other classes (a
        subclass may keep state outside its config) get their own.
        """
        proto = getattr(self.tokenizer, "proto", None)
        config = self.get_config()
        settings = (_settings_key(config), proto)
        ours = all(
            type(o).__module__.startswith("albert_tf.") for o in (self, self.tokenizer)
        )
        eager = tf.compat.v1.executing_eagerly_outside_functions()
        if ours and eager and isinstance(proto, bytes):
            return self._shared_dataset_function(config, settings)
        cached = _own_functions.get(self)
        if cached is not None:
            (tokenizer, saved), function = cached
            if tokenizer is self.tokenizer and saved == settings:
                return function
        function = _as_dataset_function(weakref.proxy(self))
        _own_functions[self] = ((self.tokenizer, settings), function)
        return function

    def _shared_dataset_function(self, config, settings):
        key = (type(self), settings[0], hashlib.sha256(settings[1]).hexdigest())
        with _shared_functions_lock:
            function = _shared_functions.get(key)
            if function is not None:
                _shared_functions.move_to_end(key)
                return function
        with tf.init_scope():  # Eager tensors, though called while tracing.
            layer = type(self).from_config(config)
            layer.tokenizer.set_proto(settings[1])
        function = _as_dataset_function(layer)
        with _shared_functions_lock:
            function = _shared_functions.setdefault(key, function)
            while len(_shared_functions) > _SHARED_FUNCTIONS_KEPT:
                _shared_functions.popitem(last=False)
        return function

    def _check_segments(self, segments):
        if len(segments) > 2:
            raise ValueError(
                f"Expected one text or a pair (a tuple of two); got a tuple of "
                f"{len(segments)}."
            )
        reject_list_of_pairs(segments[0])
        if self.text_pairs and len(segments) == 1:
            raise ValueError(
                "This model was trained on text pairs and needs two texts per "
                "example: pass a tuple `(texts, text_pairs)` (`albert-tf "
                "evaluate`/`predict`: --text-pair-column)."
            )
        if self.text_pairs is False and len(segments) == 2:
            raise ValueError(
                "This model was trained on single texts; it cannot score pairs."
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "truncate": self.truncate,
                "text_pairs": self.text_pairs,
            }
        )
        return config


def reject_list_of_pairs(texts):
    """Raises on `[(a1, b1), (a2, b2)]`, the Hugging Face habit."""
    if (
        isinstance(texts, list)
        and texts
        and all(isinstance(row, (tuple, list)) and len(row) == 2 for row in texts)
    ):
        raise ValueError(
            "Got a list of pairs; pass pairs as a tuple of two lists: "
            "`([text_a1, text_a2, ...], [text_b1, text_b2, ...])`."
        )


def _as_dataset_function(layer):
    """`layer` as a `tf.function` taking the call arguments by name."""

    # All parameters named: `reduce_retracing` cannot relate the signatures
    # of a `*args` function called with 1, 2 or 3 arguments.
    def preprocess(
        x, y=None, sample_weight=None, sequence_length=None, pad_to_longest=False
    ):
        # Only the options given: a subclass's `call` may not take them.
        options = {"sequence_length": sequence_length} if sequence_length else {}
        if pad_to_longest:
            options["pad_to_longest"] = True
        return layer(x, y, sample_weight, **options)

    # No autograph: TensorFlow never converts Keras layers' code anyway, and
    # converting this wrapper only adds "in user code" to errors.
    return tf.function(preprocess, autograph=False, reduce_retracing=True)


def _settings_key(config):
    """A preprocessor's config as text, without its and its tokenizer's layer
    names (which change no output)."""
    config = {k: v for k, v in config.items() if k != "name"}
    tokenizer = config.get("tokenizer")
    if isinstance(tokenizer, dict) and isinstance(tokenizer.get("config"), dict):
        inner = {k: v for k, v in tokenizer["config"].items() if k != "name"}
        config["tokenizer"] = {**tokenizer, "config": inner}
    return json.dumps(config, sort_keys=True, default=repr)
