"""The generic base class of in-graph tokenizers."""

import keras

from albert_tf.api_export import albert_tf_export
from albert_tf.presets.preset_api import TokenizerPresetMixin


@albert_tf_export("albert_tf.tokenizers.Tokenizer")
class Tokenizer(TokenizerPresetMixin, keras.layers.Layer):
    """Base class of tokenizer layers.

    A tokenizer maps strings to integer ids with TensorFlow ops only, so that
    it runs inside `tf.data.Dataset.map`, a `tf.function` and a SavedModel.
    Subclasses implement `tokenize`, `detokenize`, `vocabulary_size`,
    `get_vocabulary`, `id_to_token` and `token_to_id`, and declare their
    special tokens with `_add_special_token` so that each gets a `*_token_id`
    attribute once a vocabulary is set.
    """

    def __init__(self, *args, dtype="int32", **kwargs):
        name = keras.dtype_policies.get(dtype).compute_dtype
        if not (name.startswith(("int", "uint")) or name == "string"):
            raise ValueError(
                "A tokenizer's `dtype` must be an integer type (ids) or "
                f"'string' (the pieces). Received: {dtype!r}"
            )
        super().__init__(*args, dtype=dtype, **kwargs)
        # Tokenizers take strings and hold no weights.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True
        self._special_token_attrs = []

    def _add_special_token(self, token, name):
        setattr(self, name, token)
        setattr(self, f"{name}_id", None)  # Set once a vocabulary is loaded.
        self._special_token_attrs.append(name)

    @property
    def special_tokens(self):
        """The special token strings, in the order they were declared."""
        return [getattr(self, name) for name in self._special_token_attrs]

    @property
    def special_token_ids(self):
        """The ids of the special tokens, sorted (once a vocabulary is set)."""
        ids = [getattr(self, f"{name}_id") for name in self._special_token_attrs]
        return sorted({i for i in ids if i is not None})

    def _update_special_token_ids(self):
        vocabulary = set(self.get_vocabulary())
        missing = [token for token in self.special_tokens if token not in vocabulary]
        if missing:
            raise ValueError(
                f"The vocabulary of `{self.__class__.__name__}` lacks the special "
                f"tokens {missing}. Expected all of {self.special_tokens} to be "
                "pieces of the vocabulary."
            )
        for name in self._special_token_attrs:
            setattr(self, f"{name}_id", self.token_to_id(getattr(self, name)))

    def tokenize(self, inputs):
        raise NotImplementedError

    def detokenize(self, inputs):
        raise NotImplementedError

    def vocabulary_size(self):
        raise NotImplementedError

    def get_vocabulary(self):
        raise NotImplementedError

    def id_to_token(self, id):
        raise NotImplementedError

    def token_to_id(self, token):
        raise NotImplementedError

    def call(self, inputs):
        return self.tokenize(inputs)

    def compute_output_spec(self, inputs):
        # Ragged, data-dependent output: Keras must not trace it symbolically.
        return keras.KerasTensor(shape=(None, None), dtype=self.compute_dtype)
