"""AlbertBackbone: shapes, sharing, masking, serialization, unpadded inference."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf.layers import TokenPacking
from albert_tf.models import AlbertBackbone
from tests.helpers import tiny_backbone_kwargs


def _inputs(batch=2, length=8, vocab=80, pad_from=None, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, length), "int32")
    if pad_from is not None:
        mask[:, pad_from:] = 0
    return {
        "token_ids": (rng.integers(5, vocab, (batch, length)) * mask).astype("int32"),
        "segment_ids": np.zeros((batch, length), "int32"),
        "padding_mask": mask,
    }


@pytest.fixture(scope="module")
def backbone():
    return AlbertBackbone(
        **tiny_backbone_kwargs(num_layers=4, num_groups=2, num_inner_repetitions=2)
    )


def test_output_shapes_for_any_length(backbone):
    for length in (1, 5, 16):
        out = backbone(_inputs(length=length))
        assert out["sequence_output"].shape == (2, length, 16)
        assert out["pooled_output"].shape == (2, 16)


def test_weights_are_shared_within_groups():
    kwargs = tiny_backbone_kwargs()
    shared_4 = AlbertBackbone(**{**kwargs, "num_layers": 4}).count_params()
    shared_2 = AlbertBackbone(**{**kwargs, "num_layers": 2}).count_params()
    assert shared_4 == shared_2  # More layer applications, same weights.
    grouped = AlbertBackbone(**{**kwargs, "num_layers": 4, "num_groups": 2})
    inner = AlbertBackbone(**{**kwargs, "num_layers": 4, "num_inner_repetitions": 2})
    block = grouped.count_params() - shared_4
    assert block > 0 and inner.count_params() - shared_4 == block


def test_padding_does_not_change_real_tokens(backbone):
    short = _inputs(length=6)
    padded = {k: np.pad(v, ((0, 0), (0, 4))) for k, v in short.items()}
    a = backbone(short)
    b = backbone(padded)
    np.testing.assert_allclose(
        a["sequence_output"], b["sequence_output"][:, :6], atol=1e-5
    )
    np.testing.assert_allclose(a["pooled_output"], b["pooled_output"], atol=1e-5)


def test_rejects_bad_configs():
    with pytest.raises(ValueError, match="num_groups"):
        AlbertBackbone(**tiny_backbone_kwargs(num_layers=3, num_groups=2))
    with pytest.raises(ValueError, match="num_heads"):
        AlbertBackbone(**tiny_backbone_kwargs(num_heads=3))


def test_config_round_trip_and_keras_file(backbone, tmp_path):
    config = backbone.get_config()
    restored = AlbertBackbone.from_config(config)
    assert restored.get_config() == config
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    loaded = keras.saving.load_model(path)
    x = _inputs(pad_from=5)
    np.testing.assert_allclose(
        loaded(x)["pooled_output"], backbone(x)["pooled_output"], atol=1e-6
    )


def test_from_config_keeps_every_argument():
    # Values other than the defaults: a dropped key would come back as its
    # default, and a config compared only with itself would not notice.
    kwargs = tiny_backbone_kwargs(
        num_layers=4,
        num_groups=2,
        num_inner_repetitions=2,
        dropout=0.25,
        num_segments=3,
        max_sequence_length=12,
    )
    restored = AlbertBackbone.from_config(AlbertBackbone(**kwargs).get_config())
    assert {name: getattr(restored, name) for name in kwargs} == kwargs
    assert restored.embeddings_dropout.rate == 0.25
    assert restored.segment_embedding.input_dim == 3


def test_bfloat16_dtype_policy():
    model = AlbertBackbone(**tiny_backbone_kwargs(), dtype="mixed_bfloat16")
    out = model(_inputs())
    assert str(out["sequence_output"].dtype) in ("bfloat16", "<dtype: 'bfloat16'>")
    assert AlbertBackbone.from_config(model.get_config()).dtype_policy.name == (
        "mixed_bfloat16"
    )


# Padding at the end, a hole in the middle, and a masked first token (still
# computed: the pooled output reads it).
ODD_MASK = np.array(
    [[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 0, 0, 0]]
    + [[0, 1, 1, 0, 0, 0, 0, 0]],
    "int32",
)


def test_token_packing_round_trip():
    mask = np.concatenate([ODD_MASK, np.zeros((1, 8), "int32")])  # All padding.
    x = np.arange(5 * 8 * 3, dtype="float32").reshape(5, 8, 3) + 1
    packing = TokenPacking(mask)
    packed = packing.pack(x)
    keep = mask.astype(bool)
    keep[:, 0] = True
    assert packed.shape == (1, keep.sum(), 3)
    np.testing.assert_array_equal(packed[0], x[keep])  # Row-major order.
    np.testing.assert_array_equal(packing.unpack(packed), x * keep[..., None])
    # Inner sizes unknown until run time, as in a traced function.
    spec = tf.TensorSpec([None, None, None], tf.float32)
    round_trip = tf.function(lambda x: packing.unpack(packing.pack(x)), [spec])
    np.testing.assert_array_equal(round_trip(x), x * keep[..., None])


# With dropout, Keras runs attention through its masked softmax; without, through
# `ops.dot_product_attention`. Inference must skip dropout either way.
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_call_without_padding_matches_call(dropout):
    backbone = AlbertBackbone(
        **tiny_backbone_kwargs(
            num_layers=4, num_groups=2, num_inner_repetitions=2, dropout=dropout
        )
    )
    x = {**_inputs(batch=4), "padding_mask": ODD_MASK}
    x["segment_ids"][:, 3:] = 1
    expected = backbone(x, training=False)
    spec = {key: tf.TensorSpec([None, None], tf.int32) for key in x}
    traced = tf.function(backbone.call_without_padding, input_signature=[spec])
    for got in (backbone.call_without_padding(x), traced(x)):
        np.testing.assert_allclose(
            got["pooled_output"], expected["pooled_output"], atol=1e-5, rtol=0
        )
        mask = ODD_MASK.astype(bool)[..., None]
        np.testing.assert_allclose(
            got["sequence_output"] * mask,
            expected["sequence_output"] * mask,
            atol=1e-5,
            rtol=0,
        )
        padding = ~mask
        padding[:, 0] = False  # Each row's first token is computed.
        assert not np.any(got["sequence_output"].numpy() * padding)


def test_call_without_padding_keeps_the_dtype_policy():
    model = AlbertBackbone(**tiny_backbone_kwargs(), dtype="mixed_bfloat16")
    x = _inputs(pad_from=5)
    got = model.call_without_padding(x)
    expected = model(x)
    assert got["pooled_output"].dtype == expected["pooled_output"].dtype
    np.testing.assert_allclose(
        np.float32(got["pooled_output"]),
        np.float32(expected["pooled_output"]),
        atol=0.05,
    )
