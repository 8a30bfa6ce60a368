"""The generic base class of task models (backbone + head + preprocessor)."""

import inspect

import keras
import numpy as np
import tensorflow as tf

from albert_tf.api_export import albert_tf_export
from albert_tf.models.text_classifier_preprocessor import reject_list_of_pairs
from albert_tf.presets.preset_api import TaskPresetMixin


def _as_tensor_like(x):
    """Python lists of strings become numpy arrays; tuples (pairs) stay tuples."""
    if isinstance(x, list):
        return np.asarray(x)
    if isinstance(x, tuple):
        return tuple(_as_tensor_like(v) for v in x)
    return x


def _check_texts(values):
    """Names the first entry of a list of texts that is not a text."""
    if not isinstance(values, list):
        return
    for index, value in enumerate(values):
        if value is None or isinstance(value, dict):
            hint = (
                " (for rows of dicts, pass `[row['text'] for row in rows]`)"
                if isinstance(value, dict)
                else ""
            )
            raise ValueError(
                f"Expected a list of texts, but entry {index} is "
                f"{type(value).__name__}{hint}."
            )


def _first_column(x):
    """The texts (first texts of pairs), or the first array of a dict."""
    if isinstance(x, dict):
        return next(iter(x.values()))
    return x[0] if isinstance(x, tuple) else x


def _rows(data, start, stop):
    """Rows `start:stop` of an input (a tuple of pair texts or a dict of
    arrays too); `None` stays `None`."""
    if data is None:
        return None
    if isinstance(data, tuple):
        return tuple(_rows(v, start, stop) for v in data)
    if isinstance(data, dict):
        return {k: _rows(v, start, stop) for k, v in data.items()}
    return data[start:stop]


def _dataset_function(preprocessor, pad_to_longest=False):
    """What to map over a dataset: a traced, kept function where the
    preprocessor offers one (ours do), else the preprocessor itself (padding
    as it does)."""
    make = getattr(preprocessor, "dataset_function", None)
    if not callable(make):
        return preprocessor
    function = make()
    if not pad_to_longest:
        return function
    return lambda *args: function(*args, pad_to_longest=True)


def inference_call(model, unpadded=True):
    """What runs `model` at inference: `model.call_without_padding` if
    `unpadded` and it computes what `model.call` does (not for a subclass
    that overrides `call` only), else `model(x, training=False)`."""
    cls = model.__class__  # Also through a `weakref.proxy`.
    owner = next((c for c in cls.__mro__ if "call_without_padding" in vars(c)), None)
    if unpadded and owner is not None and cls.call is owner.call:
        return model.call_without_padding
    return lambda x: model(x, training=False)


def _takes_pad_to_longest(preprocessor):
    call = getattr(type(preprocessor), "call", None)
    try:
        return "pad_to_longest" in inspect.signature(call).parameters
    except (TypeError, ValueError):  # No `call`, or no signature to read.
        return False


def without_static_optimizations(ds):
    """`ds` without tf.data's default graph rewrites.

    Our pipelines are already parallel and prefetched, so the rewrites gain
    nothing, while running them (serializing the pipeline with its tokenizer
    graph) took about a third of each iterator's start: every `predict` and
    `evaluate` call, every epoch.
    """
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return ds.with_options(options)


def _has_strings(x):
    for value in tf.nest.flatten(x):
        if isinstance(value, (str, bytes)):
            return True
        dtype = getattr(value, "dtype", None)
        if dtype == tf.string or (isinstance(dtype, np.dtype) and dtype.kind in "SUO"):
            return True
    return False


def label_ids(model, labels, num_inputs=None):
    """`labels` as class ids: names are looked up in `model.label_names`
    (text ids such as "1" count as ids, as in data files).

    Ids are checked against `model.num_classes` (Keras's own errors name
    neither the label nor its row), and the count against `num_inputs`.

    Raises:
        ValueError: an unknown name or id, names for a model without
            `label_names`, or not one label per input.
    """
    if np.ndim(labels) == 0 or not hasattr(labels, "__len__"):
        return labels
    if num_inputs is not None and len(labels) != num_inputs:
        raise ValueError(
            f"Got {num_inputs} inputs but {len(labels)} labels: expected one "
            "label per input."
        )
    array = np.asarray(labels)
    names = getattr(model, "label_names", None)
    if array.dtype.kind in "SUO":
        if not names:
            raise ValueError(
                "Labels are strings, but this model has no `label_names`; "
                "pass class ids (0, 1, ...), or build the model with "
                "`label_names=[...]`."
            )
        # The rule data files follow: a name, or an id written as text ("1",
        # as csv reads SST-2's labels) where the names are not numbers.
        from albert_tf.training.data_files import LabelVocabulary

        vocabulary = LabelVocabulary(names)
        ids = []
        for row, label in enumerate(array.tolist()):
            label = label.decode() if isinstance(label, bytes) else label
            class_id = vocabulary.lookup(label)
            if class_id is None:
                raise ValueError(
                    f"Label {label!r} (entry {row}) is not one of this "
                    f"model's label_names: {', '.join(names)}."
                )
            ids.append(class_id)
        return np.asarray(ids, np.int32)
    num_classes = getattr(model, "num_classes", None)
    if array.dtype.kind in "iu" and array.ndim == 1 and num_classes:
        bad = np.flatnonzero((array < 0) | (array >= num_classes))
        if bad.size:
            raise ValueError(
                f"Label {array[bad[0]]} (entry {bad[0]}) is not a class id: "
                f"this model has {num_classes} classes, ids 0 to {num_classes - 1}."
            )
    return labels


def class_ids(model, labels, num_inputs):
    """One class id per input, as a 1-D int64 array, for scoring predictions.

    Takes what `label_ids` takes, plus a column vector (`df[["label"]]`) and
    whole-number floats; refuses what would be scored wrongly without an
    error (one-hot rows, fractions, booleans).
    """
    if labels is None:
        raise ValueError("No labels: expected one class id or name per input.")
    if hasattr(labels, "numpy"):
        labels = labels.numpy()
    if not isinstance(labels, (str, bytes)) and not hasattr(labels, "__len__"):
        labels = list(labels) if hasattr(labels, "__iter__") else [labels]
    elif np.ndim(labels) == 0:
        labels = [labels]
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"Expected one label per input; got labels of shape {array.shape} "
            "(for one-hot rows, pass `labels.argmax(-1)`)."
        )
    if array.dtype.kind == "b":
        raise ValueError("Labels are booleans; pass class ids (0, 1, ...) or names.")
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            bad = int(np.flatnonzero(~whole)[0])
            raise ValueError(
                f"Label {array[bad]} (entry {bad}) is not a class id (a whole "
                "number) or a label name."
            )
        array = array.astype(np.int64)
    return np.asarray(label_ids(model, array, num_inputs), np.int64)


@albert_tf_export("albert_tf.models.Task")
class Task(TaskPresetMixin, keras.Model):
    """Base class of task models: a backbone, a head and a preprocessor.

    When `preprocessor` is set, `fit()`, `evaluate()` and `predict()` take raw
    inputs (lists, numpy arrays, tensors or a `tf.data.Dataset`) and apply the
    preprocessor in a `tf.data` pipeline; without one they take preprocessed
    inputs. Calling the model directly never preprocesses.

    Unless XLA compiles the model, which needs fixed shapes (`jit_compile`,
    which Keras's default `"auto"` turns on for a GPU without a
    distribution strategy; TPUs), batches are padded to their longest text
    rather than to the preprocessor's `sequence_length`, and `predict()`
    runs the model's `call_without_padding` where it has one: the same
    outputs, up to float round-off, for a fraction of the compute.

    Args:
        compile: bool. Compile with the task's defaults right away, so that
            `fit()` works without a `compile()` call (as in keras-hub).
    """

    backbone_cls = None
    preprocessor_cls = None
    # Subclasses set `self.backbone` and `self.preprocessor` in `__init__`.

    def __init__(self, *args, compile=True, **kwargs):
        super().__init__(*args, **kwargs)
        self._initialized = True
        if self.backbone is not None:
            self.dtype_policy = self.backbone.dtype_policy
        if compile:
            self.compile()

    def build(self, input_shape=None):
        # The functional graph is built in `__init__`; the preprocessor has
        # no weights. Without this, Keras warns about "unbuilt state".
        self.built = True

    def __call__(self, *args, **kwargs):
        inputs = args[0] if args else kwargs.get("inputs")
        if inputs is not None and not isinstance(inputs, dict) and _has_strings(inputs):
            raise ValueError(
                "Calling a task model directly does not preprocess, but it "
                "received strings. Use `predict()`, `fit()` or `evaluate()`, or "
                "call `model(model.preprocessor(x))`."
            )
        return super().__call__(*args, **kwargs)

    def _dataset(
        self,
        x,
        y=None,
        sample_weight=None,
        batch_size=None,
        shuffle=False,
        labelled=False,
    ):
        """Batched `tf.data` pipeline of (preprocessed) samples.

        `labelled`: a dataset's second element is labels (`fit`/`evaluate`),
        not the second texts of pairs.
        """
        if isinstance(x, tf.data.Dataset):
            if y is not None or sample_weight is not None:
                raise ValueError(
                    "When `x` is a `tf.data.Dataset`, pass labels and sample "
                    "weights inside it, not as `y`/`sample_weight`."
                )
            specs = tf.nest.flatten(x.element_spec)
            if any(s.dtype == tf.string and s.shape.rank == 0 for s in specs):
                raise ValueError(
                    "The dataset yields one text at a time; Keras takes batches. "
                    "Batch it first, e.g. `dataset.batch(32)`."
                )
            ds = x
            spec = x.element_spec
            if (
                labelled
                and isinstance(spec, tuple)
                and len(spec) in (2, 3)
                and isinstance(spec[1], tf.TensorSpec)
                and spec[1].dtype == tf.string
            ):
                ds = ds.map(self._label_names_to_ids())
        else:
            segments = x if isinstance(x, tuple) else (x,)
            reject_list_of_pairs(segments[0])
            if any(np.ndim(v) == 0 and _has_strings(v) for v in segments):
                example = (
                    '(["a text"], ["its pair"])'
                    if len(segments) == 2
                    else ('["a text"]')
                )
                raise ValueError(
                    "Expected a batch of texts, but received a single string. "
                    f"Pass a list, e.g. `predict({example})`."
                )
            lengths = {len(v) for v in segments if isinstance(v, (list, np.ndarray))}
            if len(segments) == 2 and len(lengths) == 2:
                raise ValueError(
                    "The two texts of a pair must have the same batch size; got "
                    f"{len(segments[0])} and {len(segments[1])}."
                )
            if any(isinstance(v, list) and not v for v in segments):
                raise ValueError("Received an empty list: there is nothing to run.")
            for v in segments:
                _check_texts(v)
            if y is not None and not isinstance(y, dict):
                y = label_ids(self, y, len(_first_column(x)))
            if self.preprocessor is None and _has_strings(x):
                raise ValueError(
                    "This model has no preprocessor, so it takes token ids (a "
                    "dict of `token_ids`, `segment_ids`, `padding_mask`), not "
                    "strings. Preprocess first, or set `model.preprocessor`."
                )
            data = keras.utils.pack_x_y_sample_weight(
                _as_tensor_like(x), _as_tensor_like(y), _as_tensor_like(sample_weight)
            )
            ds = tf.data.Dataset.from_tensor_slices(data)
            if shuffle:
                ds = ds.shuffle(ds.cardinality(), reshuffle_each_iteration=True)
            ds = ds.batch(batch_size or 32)
        if self.preprocessor is not None:
            ds = ds.map(
                _dataset_function(self.preprocessor, self._pads_to_longest()),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        ds = ds.prefetch(tf.data.AUTOTUNE)
        if isinstance(x, tf.data.Dataset):
            return ds  # The user's options, as given.
        return without_static_optimizations(ds)

    def _needs_static_shapes(self):
        """XLA (`jit_compile`; TPUs always) compiles one program per input
        shape and cannot compile `call_without_padding`'s varying shapes."""
        tpu = isinstance(self.distribute_strategy, tf.distribute.TPUStrategy)
        return bool(self.jit_compile) or tpu

    def _pads_to_longest(self):
        """Whether `fit`/`evaluate`/`predict` pad each batch to its longest
        text, not to the preprocessor's `sequence_length` (keras-hub's way):
        the same outputs for less compute, where shapes may vary."""
        ours = callable(getattr(self.preprocessor, "dataset_function", None))
        return (
            ours
            and _takes_pad_to_longest(self.preprocessor)
            and not self._needs_static_shapes()
        )

    def _preprocess_options(self):
        return {"pad_to_longest": True} if self._pads_to_longest() else {}

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return inference_call(self, unpadded=not self._needs_static_shapes())(x)

    def _label_names_to_ids(self):
        """A `Dataset.map` function that looks label names up in `label_names`."""
        names = getattr(self, "label_names", None)
        if not names:
            raise ValueError(
                "The dataset's labels are strings, but this model has no "
                "`label_names`; map them to class ids (0, 1, ...) first, or "
                "build the model with `label_names=[...]`."
            )
        from albert_tf.training.data_files import LabelVocabulary

        # The rule `label_ids` and data files follow, as graph ops.
        table_lookup = LabelVocabulary(names).tensor_lookup()
        message = f"a label is not one of this model's label_names: {', '.join(names)}"

        def lookup(x, y, *sample_weight):
            ids = table_lookup(y)
            check = tf.debugging.assert_non_negative(ids, message=message)
            with tf.control_dependencies([check]):
                return (x, tf.identity(ids), *sample_weight)

        return lookup

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        sample_weight=None,
        validation_data=None,
        **kwargs,
    ):
        # Raw arrays are shuffled here, before batching; datasets as given.
        shuffle = kwargs.pop("shuffle", True)
        split = kwargs.pop("validation_split", None)
        if split and validation_data is None:
            # As Keras does for arrays: the last rows, before shuffling.
            if isinstance(x, tf.data.Dataset):
                raise ValueError(
                    "`validation_split` takes arrays or lists, not a "
                    "`tf.data.Dataset`: pass `validation_data` instead."
                )
            if not 0 < split < 1:
                raise ValueError(
                    f"`validation_split` must be in (0, 1). Received: {split}"
                )
            at = int(len(_first_column(x)) * (1 - split))
            validation_data = tuple(_rows(v, at, None) for v in (x, y, sample_weight))
            x, y, sample_weight = (_rows(v, 0, at) for v in (x, y, sample_weight))
        ds = self._dataset(
            x, y, sample_weight, batch_size, shuffle=shuffle, labelled=True
        )
        if validation_data is not None:
            if not isinstance(validation_data, tf.data.Dataset):
                validation_data = keras.utils.unpack_x_y_sample_weight(
                    tuple(validation_data)
                )
                validation_data = self._dataset(
                    *validation_data, batch_size=batch_size, labelled=True
                )
            else:
                validation_data = self._dataset(validation_data, labelled=True)
        return super().fit(ds, validation_data=validation_data, shuffle=False, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, sample_weight=None, **kwargs):
        if kwargs.get("_use_cached_eval_dataset", False):
            return super().evaluate(x=x, y=y, **kwargs)
        return super().evaluate(
            self._dataset(x, y, sample_weight, batch_size, labelled=True), **kwargs
        )

    def predict(self, x=None, batch_size=None, **kwargs):
        return super().predict(self._dataset(x, batch_size=batch_size), **kwargs)

    def predict_on_batch(self, x, **kwargs):
        if self.preprocessor is not None:
            x = self.preprocessor(_as_tensor_like(x), **self._preprocess_options())
        return super().predict_on_batch(x, **kwargs)

    def train_on_batch(self, x, y=None, sample_weight=None, **kwargs):
        x, y, sample_weight = self._preprocessed_batch(x, y, sample_weight)
        return super().train_on_batch(x, y, sample_weight, **kwargs)

    def test_on_batch(self, x, y=None, sample_weight=None, **kwargs):
        x, y, sample_weight = self._preprocessed_batch(x, y, sample_weight)
        return super().test_on_batch(x, y, sample_weight, **kwargs)

    def _preprocessed_batch(self, x, y, sample_weight):
        """One batch of raw texts (and label names) as the model takes it."""
        if y is not None and not isinstance(y, dict):
            y = label_ids(self, y, len(_first_column(x)))
        if self.preprocessor is None:
            return x, y, sample_weight
        return keras.utils.unpack_x_y_sample_weight(
            self.preprocessor(
                _as_tensor_like(x),
                _as_tensor_like(y),
                _as_tensor_like(sample_weight),
                **self._preprocess_options(),
            )
        )

    def compile_from_config(self, config):
        # Keras skips this for models with a custom `compile()`; ours accepts
        # the same arguments, so a reloaded model comes back compiled.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        # Functional configs describe the graph; ours are the constructor args.
        config = {
            "backbone": keras.layers.serialize(self.backbone),
            "preprocessor": (
                keras.layers.serialize(self.preprocessor)
                if self.preprocessor is not None
                else None
            ),
            "name": self.name,
            "trainable": self.trainable,
        }
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.layers.deserialize(config[key])
        return cls(**config)
