"""`tf.data` input pipelines: tokenize on the host, shuffle, batch, prefetch.

Strings never reach the model: the preprocessor runs inside `tf.data` (on
the host CPU, which TPUs require), and the model sees int32 `token_ids`,
`segment_ids` and `padding_mask`. Training batches come either with static
shapes (fixed `sequence_length`, `drop_remainder=True`: TPUs and XLA) or
length-bucketed with dynamic padding (less padding, faster on CPU/GPU).
"""

import tensorflow as tf

from albert_tf.models.task import without_static_optimizations

AUTOTUNE = tf.data.AUTOTUNE
# Rows tokenized per call: one tokenizer graph run per row costs a few times
# the tokenizing itself (about 5x the rows/s in batches of 256 on 2 cores),
# and on CPU it takes those cycles from the training step.
TOKENIZE_BATCH_SIZE = 256


def _features(data):
    if data.text_pairs is None:
        return tf.constant(data.texts)
    return (tf.constant(data.texts), tf.constant(data.text_pairs))


def default_bucket_boundaries(sequence_length):
    """Powers of two from 16 below `sequence_length`: 16, 32, 64, ..."""
    boundaries, length = [], 16
    while length < sequence_length:
        boundaries.append(length)
        length *= 2
    return boundaries


def _trim(x, y):
    # Unbatched, padded to its tokenize batch's longest row: cut back to the
    # real length so that bucketing can pad each batch to its longest row only.
    length = tf.reduce_sum(x["padding_mask"])
    return {key: value[:length] for key, value in x.items()}, y


def _tokenized_rows(ds, preprocessor, static_shapes):
    """`(text, label)` rows to `(features, label)` rows, tokenized in batches."""
    preprocess = preprocessor.dataset_function()
    ds = ds.batch(TOKENIZE_BATCH_SIZE).map(
        lambda x, y: preprocess(x, y, pad_to_longest=not static_shapes),
        num_parallel_calls=AUTOTUNE,
    )
    ds = ds.unbatch()
    if not static_shapes:
        ds = ds.map(_trim, num_parallel_calls=AUTOTUNE)
    return ds


def train_dataset(
    data,
    preprocessor,
    batch_size,
    seed,
    shuffle_buffer=10000,
    static_shapes=False,
    bucket_boundaries=None,
    num_shards=1,
    shard_index=0,
    skip_batches=0,
    cache=True,
):
    """An endless, shuffled stream of preprocessed training batches.

    The order depends only on `seed`, so a resumed run can `skip_batches` to
    continue exactly where an interrupted one stopped.

    Args:
        data: `LabelledText` with class-id labels.
        preprocessor: `albert_tf.models.TextClassifierPreprocessor`.
        batch_size: int. Batch size of this pipeline (per replica under
            `distribute_datasets_from_function`).
        seed: int. Shuffle seed.
        shuffle_buffer: int. Shuffle buffer size.
        static_shapes: bool. Pad every batch to `preprocessor.sequence_length`
            and drop incomplete batches (for TPUs and XLA).
        bucket_boundaries: list of int. Length buckets for dynamic padding.
        num_shards: int. Number of input pipelines (workers).
        shard_index: int. This pipeline's shard.
        skip_batches: int. Batches to skip (resuming).
        cache: bool. Keep the tokenized rows in memory for later epochs.
            Leave it off for runs shorter than one epoch: an unfinished cache
            is thrown away with a TF warning when the run ends.

    Returns:
        A `tf.data.Dataset` of `(x, y)` with `x` a dict of int32 tensors.
    """
    ds = tf.data.Dataset.from_tensor_slices((_features(data), tf.constant(data.labels)))
    if num_shards > 1:
        ds = ds.shard(num_shards, shard_index)
    # Tokenize each text once; later epochs read the cached ids.
    ds = _tokenized_rows(ds, preprocessor, static_shapes)
    if cache:
        ds = ds.cache()
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    if static_shapes:
        ds = ds.batch(batch_size, drop_remainder=True)
    else:
        if bucket_boundaries is None:
            bucket_boundaries = default_bucket_boundaries(preprocessor.sequence_length)
        pad_id = preprocessor.tokenizer.pad_token_id
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda x, y: tf.shape(x["token_ids"])[0],
            bucket_boundaries=list(bucket_boundaries),
            bucket_batch_sizes=[batch_size] * (len(bucket_boundaries) + 1),
            padding_values=(
                {
                    "token_ids": tf.constant(pad_id, tf.int32),
                    "segment_ids": tf.constant(0, tf.int32),
                    "padding_mask": tf.constant(0, tf.int32),
                },
                tf.constant(0, tf.int32),
            ),
            drop_remainder=True,
        )
    if skip_batches:
        ds = ds.skip(skip_batches)
    return ds.prefetch(AUTOTUNE)


def eval_dataset(data, preprocessor, batch_size, static_shapes=False):
    """Preprocessed batches of a dev/test file, in file order, all rows kept.

    Args:
        data: `LabelledText`; labels (class ids) are included when present.
        preprocessor: `albert_tf.models.TextClassifierPreprocessor`.
        batch_size: int.
        static_shapes: bool. Pad to `preprocessor.sequence_length` instead of
            the longest row of each batch.

    Returns:
        A `tf.data.Dataset` of `x` or `(x, y)`.
    """
    features = _features(data)
    if data.labels is not None:
        ds = tf.data.Dataset.from_tensor_slices((features, tf.constant(data.labels)))
    else:
        ds = tf.data.Dataset.from_tensor_slices(features)
    ds = ds.batch(batch_size)
    function = preprocessor.dataset_function()

    def preprocess(*args):
        if data.labels is None:
            x, y = (args[0] if len(args) == 1 else tuple(args)), None
        else:
            x, y = args
        return function(x, y, pad_to_longest=not static_shapes)

    ds = ds.map(preprocess, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
    return without_static_optimizations(ds)  # One iterator per evaluation.
