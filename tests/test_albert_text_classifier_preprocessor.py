"""AlbertTextClassifierPreprocessor: packing, truncation, tf.data, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf.layers import MultiSegmentPacker
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer
from tests.helpers import train_tiny_sentencepiece


@pytest.fixture(scope="module")
def tokenizer(tiny_proto):
    return AlbertTokenizer(proto=tiny_proto)


def _ids(tokenizer, text):
    return tokenizer(tf.constant(text)).numpy().tolist()


def test_single_text_is_cls_text_sep_padded(tokenizer):
    pre = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=12)
    out = pre(tf.constant(["the quick fox"]))
    ids = _ids(tokenizer, "the quick fox")
    expected = [tokenizer.cls_token_id] + ids + [tokenizer.sep_token_id]
    expected += [tokenizer.pad_token_id] * (12 - len(expected))
    assert out["token_ids"].numpy()[0].tolist() == expected
    assert out["segment_ids"].numpy()[0].tolist() == [0] * 12
    mask = out["padding_mask"].numpy()[0].tolist()
    assert mask == [1] * (len(ids) + 2) + [0] * (10 - len(ids))
    assert all(out[k].dtype == tf.int32 for k in out)


def test_pair_gets_segment_ids(tokenizer):
    pre = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=16)
    out = pre((tf.constant(["the dog"]), tf.constant(["a fox"])))
    a, b = _ids(tokenizer, "the dog"), _ids(tokenizer, "a fox")
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    n = len(a) + len(b) + 3
    assert out["token_ids"].numpy()[0, :n].tolist() == [cls, *a, sep, *b, sep]
    assert out["segment_ids"].numpy()[0, :n].tolist() == [0] * (len(a) + 2) + [1] * (
        len(b) + 1
    )


def test_pairs_of_unequal_batch_size_are_an_error(tokenizer):
    pre = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    with pytest.raises(ValueError, match="same batch size.*Received: 3 and 1"):
        pre((tf.constant(["a", "b", "c"]), tf.constant(["d"])))

    # Unknown batch sizes (a traced function) are checked when it runs.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def pack(a, b):
        return pre((a, b))["token_ids"]

    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        pack(tf.constant(["a", "b"]), tf.constant(["d", "e", "f"]))
    assert pack(tf.constant(["a"]), tf.constant(["d"])).shape == (1, 8)


@pytest.mark.parametrize("truncate", ["round_robin", "waterfall"])
def test_truncation_modes(tokenizer, truncate):
    long_a = "the quick brown fox jumped over the lazy dog " * 3
    long_b = "what an amazing movie truly wonderful acting " * 3
    pre = AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=11, truncate=truncate
    )
    out = pre((tf.constant([long_a]), tf.constant([long_b])))
    segments = out["segment_ids"].numpy()[0]
    assert out["padding_mask"].numpy()[0].tolist() == [1] * 11
    assert out["token_ids"].numpy()[0, -1] == tokenizer.sep_token_id
    a_len, b_len = (segments == 0).sum() - 2, (segments == 1).sum() - 1
    assert a_len + b_len == 8
    if truncate == "round_robin":
        assert (a_len, b_len) == (4, 4)
    else:  # Waterfall keeps the first segment whole as far as it fits.
        assert (a_len, b_len) == (8, 0)
        assert out["token_ids"].numpy()[0, 1:9].tolist() == _ids(tokenizer, long_a)[:8]


@pytest.mark.parametrize("truncate", ["round_robin", "waterfall"])
def test_packer_matches_tf_text_trimmers_and_combine_segments(truncate):
    """The packer computes one or two segments' trimming and packing with
    core ops; tf-text's trimmer and `combine_segments` are the reference."""
    import tensorflow_text as tf_text

    trimmer = {
        "round_robin": tf_text.RoundRobinTrimmer,
        "waterfall": tf_text.WaterfallTrimmer,
    }[truncate]
    rng = np.random.default_rng(0)
    for trial in range(60):
        count, rows = int(rng.integers(1, 3)), int(rng.integers(0, 5))
        length = int(rng.integers(count + 1, 12))
        longest = trial % 3 == 0
        segments = []
        for _ in range(count):  # Empty rows and rows longer than `length`.
            lengths = rng.integers(0, 12, size=rows)
            values = rng.integers(4, 50, size=int(lengths.sum()), dtype=np.int32)
            # Row splits of either dtype (tokenizers give int64).
            lengths = lengths.astype([np.int64, np.int32][trial % 2])
            segments.append(tf.RaggedTensor.from_row_lengths(values, lengths))
        packer = MultiSegmentPacker(length, 2, 3, truncate=truncate)
        token_ids, segment_ids = packer(tuple(segments), pad_to_longest=longest)
        reference = [s.with_row_splits_dtype(tf.int64) for s in segments]
        trimmed = trimmer(max_seq_length=length - 1 - count).trim(reference)
        want_ids, want_segments = tf_text.combine_segments(
            trimmed, start_of_sequence_id=2, end_of_segment_id=3
        )
        width = max(int(want_ids.bounding_shape()[1]), 1 + count) if longest else length
        shape = [rows, width]
        np.testing.assert_array_equal(token_ids, want_ids.to_tensor(0, shape=shape))
        np.testing.assert_array_equal(
            segment_ids, want_segments.to_tensor(0, shape=shape)
        )


def test_bad_truncate_and_too_short_length_are_named(tokenizer):
    with pytest.raises(ValueError, match="truncate"):
        AlbertTextClassifierPreprocessor(tokenizer, truncate="middle")
    pre = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=2)
    with pytest.raises(ValueError, match="sequence_length=2"):
        pre((tf.constant(["a"]), tf.constant(["b"])))
    with pytest.raises(ValueError, match="sequence_length=0"):
        pre(tf.constant(["a"]), sequence_length=0)  # Not "use the default".
    for bad, error in ((8.0, TypeError), ("8", TypeError), (1, ValueError)):
        with pytest.raises(error, match=f"Received: {bad!r}"):
            AlbertTextClassifierPreprocessor(tokenizer, sequence_length=bad)


def test_pad_to_longest_and_sequence_length_override(tokenizer):
    pre = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=16)
    texts = tf.constant(["a", "the quick fox"])
    dynamic = pre(texts, pad_to_longest=True)["token_ids"]
    assert dynamic.shape[1] == len(_ids(tokenizer, "the quick fox")) + 2
    fixed = pre(texts)["token_ids"].numpy()
    np.testing.assert_array_equal(fixed[:, : dynamic.shape[1]], dynamic.numpy())
    assert pre(texts, sequence_length=6)["token_ids"].shape == (2, 6)
    long = tf.constant(["the quick brown fox jumped over the lazy dog " * 5])
    assert pre(long, pad_to_longest=True)["token_ids"].shape == (1, 16)
    # An empty batch is as wide as the shortest row could be, not 0 wide.
    empty = tf.constant([], tf.string)
    assert pre(empty, pad_to_longest=True)["token_ids"].shape == (0, 2)
    assert pre((empty, empty), pad_to_longest=True)["segment_ids"].shape == (0, 3)
    # Setting the attribute after a call reaches the packer already built.
    pre.sequence_length = 6
    assert pre(texts)["token_ids"].shape == (2, 6)


def test_labels_and_sample_weights_pass_through(tokenizer):
    pre = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    x, y, sw = pre(
        tf.constant(["a", "b"]), tf.constant([1, 0]), tf.constant([0.5, 2.0])
    )
    assert y.numpy().tolist() == [1, 0]
    assert sw.numpy().tolist() == [0.5, 2.0]
    assert set(x) == {"token_ids", "segment_ids", "padding_mask"}


def test_tf_data_batched_and_unbatched_match_direct_call(tokenizer):
    pre = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=10)
    texts = ["the quick fox", "a dull film", "good acting"]
    labels = [0, 1, 1]
    direct, _ = pre(tf.constant(texts), tf.constant(labels))
    ds = tf.data.Dataset.from_tensor_slices((texts, labels))
    unbatched = [x["token_ids"].numpy() for x, _ in ds.map(pre)]
    batched = next(iter(ds.batch(3).map(pre)))[0]["token_ids"].numpy()
    np.testing.assert_array_equal(np.stack(unbatched), direct["token_ids"].numpy())
    np.testing.assert_array_equal(batched, direct["token_ids"].numpy())
    pairs = tf.data.Dataset.from_tensor_slices((texts, texts)).batch(3)
    pair_out = next(iter(pairs.map(lambda a, b: pre((a, b)))))
    assert pair_out["segment_ids"].numpy().max() == 1


def test_dataset_function_traces_once_and_follows_changed_settings(
    tiny_proto, tmp_path
):
    tokenizer = AlbertTokenizer(proto=tiny_proto)
    pre = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=8)
    texts = ["The Quick fox", "a dog"]
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(2)
    function = pre.dataset_function()
    # Shared with same-config preprocessors of earlier tests, maybe traced.
    traces = function.experimental_get_tracing_count()
    for _ in range(3):  # A dataset each, as three `predict` calls make.
        out = next(iter(ds.map(pre.dataset_function())))
    assert pre.dataset_function() is function
    traces = function.experimental_get_tracing_count() - traces
    assert traces <= 1
    np.testing.assert_array_equal(
        out["token_ids"], pre(tf.constant(texts))["token_ids"]
    )

    # Each change must reach the next dataset, not the first trace.
    def token_ids():
        return next(iter(ds.map(pre.dataset_function())))["token_ids"].numpy()

    pre.sequence_length = 12
    before = token_ids()
    assert before.shape == (2, 12)
    tokenizer.set_proto(train_tiny_sentencepiece(tmp_path, vocab_size=60))
    after = token_ids()
    np.testing.assert_array_equal(after, pre(tf.constant(texts))["token_ids"])
    assert (after != before).any()

    # A new preprocessor with the first settings (a new model) reuses the
    # first trace, which the changes above to `pre` did not reach.
    twin = AlbertTextClassifierPreprocessor(
        AlbertTokenizer(proto=tiny_proto), sequence_length=8
    )
    assert twin.dataset_function() is function
    traces = function.experimental_get_tracing_count()
    out = next(iter(ds.map(function)))
    assert function.experimental_get_tracing_count() == traces
    np.testing.assert_array_equal(
        out["token_ids"], twin(tf.constant(texts))["token_ids"]
    )
    # Other ids' dtype is another function.
    int64 = AlbertTokenizer(proto=tiny_proto, dtype="int64")
    other = AlbertTextClassifierPreprocessor(int64, sequence_length=8)
    assert other.dataset_function() is not function

    # `truncate` changed after a call reaches both the call and the function.
    pair = (tf.constant(["the quick brown fox jumped"]), tf.constant(["a dog"]))
    round_robin = twin(pair)["token_ids"]
    twin.truncate = "waterfall"
    waterfall = twin(pair)["token_ids"]
    np.testing.assert_array_equal(twin.dataset_function()(pair)["token_ids"], waterfall)
    assert (waterfall != round_robin).numpy().any()

    # A subclass whose `call` takes no options still maps (keras-hub style).
    class Plain(AlbertTextClassifierPreprocessor):
        def call(self, x, y=None, sample_weight=None):
            return super().call(x, y, sample_weight)

    plain = Plain(tokenizer, sequence_length=8)
    out = next(iter(ds.map(plain.dataset_function())))
    np.testing.assert_array_equal(
        out["token_ids"], plain(tf.constant(texts))["token_ids"]
    )


def test_config_round_trip(tokenizer):
    pre = AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=9, truncate="waterfall"
    )
    config = keras.layers.serialize(pre)
    restored = keras.layers.deserialize(config)
    assert restored.get_config() == pre.get_config()
    # Not the defaults: a key missing from both configs would pass the above.
    assert (restored.sequence_length, restored.truncate) == (9, "waterfall")
    restored.tokenizer.set_proto(tokenizer.proto)
    texts = tf.constant(["the quick fox"])
    np.testing.assert_array_equal(
        restored(texts)["token_ids"].numpy(), pre(texts)["token_ids"].numpy()
    )
