"""Moves a padded batch's real tokens into one row and back ("unpadding")."""

import tensorflow as tf


class TokenPacking:
    """Where the real tokens of a padded `[batch, length, ...]` batch are.

    Per-token layers (dense projections, feed-forward nets, layer norms) do
    nearly all of a Transformer's arithmetic, and on a padded batch a share
    of it goes to padding: batches of 32 SST-2 sentences padded to their
    longest are about half padding. `pack` gathers the real tokens so those
    layers run on them alone; `unpack` scatters them back for attention,
    which needs the `[batch, length]` layout. Packed tensors are `[1,
    tokens, ...]`, one row holding every real token, so Keras layers built
    for `[batch, length, width]` inputs take them unchanged.

    Each row's first token (`[CLS]`, read by the pooled output) is kept even
    where `padding_mask` marks it as padding, so every row has a pooled
    output. (A row with no real token attends to no keys: its output is
    undefined, padded or packed.) Only graph ops: it runs inside
    `tf.function`s and SavedModels. Output shapes vary with the number of
    real tokens, so XLA (`jit_compile`, TPUs) cannot compile it.

    Args:
        padding_mask: int or bool tensor, `[batch, length]`. Non-zero for real
            tokens.

    Example:
    ```python
    packing = TokenPacking(np.array([[1, 1, 0], [1, 0, 0]]))
    packed = packing.pack(np.ones((2, 3, 4), "float32"))  # (1, 3, 4)
    padded = packing.unpack(packed)  # (2, 3, 4), zeros at padding
    ```
    """

    def __init__(self, padding_mask):
        padding_mask = tf.convert_to_tensor(padding_mask)
        self.batch_shape = tf.shape(padding_mask, out_type=tf.int64)
        self.padding_mask = tf.cast(padding_mask, tf.bool)
        first = tf.range(self.batch_shape[1]) == 0
        keep = tf.logical_or(self.padding_mask, first[tf.newaxis, :])
        # Flat indices (row * length + position) of the kept tokens.
        self.indices = tf.where(tf.reshape(keep, [-1]))

    def pack(self, x):
        """`[batch, length, ...]` -> `[1, tokens, ...]`: the kept tokens."""
        x = tf.convert_to_tensor(x)
        flat = tf.reshape(x, [-1, *_inner_shape(x)])
        return tf.gather_nd(flat, self.indices)[tf.newaxis]

    def unpack(self, x):
        """`[1, tokens, ...]` -> `[batch, length, ...]`, zeros at padding."""
        x = tf.convert_to_tensor(x)
        inner = _inner_shape(x)
        flat_shape = [tf.reduce_prod(self.batch_shape), *inner]
        flat = tf.scatter_nd(self.indices, x[0], flat_shape)
        return tf.reshape(flat, [self.batch_shape[0], self.batch_shape[1], *inner])


def _inner_shape(x):
    """The sizes after the first two, static where known (Keras layers need a
    static width), else read at run time."""
    dynamic = tf.shape(x, out_type=tf.int64)
    return [d if d is not None else dynamic[i] for i, d in enumerate(x.shape) if i > 1]
