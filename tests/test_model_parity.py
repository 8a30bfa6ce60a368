"""Our ALBERT equals its real peers (transformers, keras-hub) on the same weights.

Random tiny models of each peer (every weight random, biases and LayerNorms
too, so a mis-mapped one shows), their weights copied into ours with the
converters' explicit name maps; outputs compared on padded inputs.
"""

import numpy as np
import pytest

from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.presets import convert_huggingface
from albert_tf.presets import convert_keras_hub
from albert_tf.presets.weight_assignment import assign_weights
from tests.helpers import padded_inputs
from tests.helpers import randomize_keras_weights
from tests.helpers import randomize_torch_weights
from tests.helpers import tiny_hf_albert_config

GROUPINGS = [
    pytest.param(
        dict(num_groups=1, num_inner_repetitions=1, num_layers=2), id="1group"
    ),
    pytest.param(
        dict(num_groups=2, num_inner_repetitions=2, num_layers=4), id="2groups"
    ),
    # Unequal counts, so swapping groups and inner repetitions shows.
    pytest.param(
        dict(num_groups=2, num_inner_repetitions=1, num_layers=4), id="2groups1inner"
    ),
]
TOLERANCE = 1e-5


def _hf_config(grouping, **kwargs):
    return tiny_hf_albert_config(
        num_hidden_groups=grouping["num_groups"],
        inner_group_num=grouping["num_inner_repetitions"],
        num_hidden_layers=grouping["num_layers"],
        **kwargs,
    )


def _torch_forward(model, inputs):
    import torch

    with torch.no_grad():
        return model(
            input_ids=torch.tensor(inputs["token_ids"], dtype=torch.long),
            token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long),
            attention_mask=torch.tensor(inputs["padding_mask"], dtype=torch.long),
        )


def _masked_max_diff(ours, theirs, padding_mask):
    # Padded positions are undefined in both; compare real tokens only.
    mask = padding_mask.astype(bool)
    return np.max(np.abs(np.asarray(ours)[mask] - np.asarray(theirs)[mask]))


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_backbone_matches_transformers_albert_model(grouping):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    hf_model = transformers.AlbertModel(_hf_config(grouping)).eval()
    randomize_torch_weights(hf_model, seed=0)
    config = convert_huggingface.convert_backbone_config(hf_model.config.to_dict())
    backbone = AlbertBackbone(**config)
    state = {k: v.numpy() for k, v in hf_model.state_dict().items()}
    assign_weights(
        convert_huggingface.backbone_weight_specs(backbone), state.get, "torch model"
    )
    inputs = padded_inputs()
    expected = _torch_forward(hf_model, inputs)
    # The padded path and the one exports use (real tokens only).
    for outputs in (backbone(inputs), backbone.call_without_padding(inputs)):
        assert (
            _masked_max_diff(
                outputs["sequence_output"],
                expected.last_hidden_state.numpy(),
                inputs["padding_mask"],
            )
            <= TOLERANCE
        )
        np.testing.assert_allclose(
            outputs["pooled_output"],
            expected.pooler_output.numpy(),
            atol=TOLERANCE,
            rtol=0,
        )


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_classifier_logits_match_transformers(grouping):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    hf_model = transformers.AlbertForSequenceClassification(
        _hf_config(grouping, num_labels=3)
    ).eval()
    randomize_torch_weights(hf_model, seed=1)
    config = convert_huggingface.convert_backbone_config(hf_model.config.to_dict())
    classifier = AlbertTextClassifier(AlbertBackbone(**config), num_classes=3)
    state = {k: v.numpy() for k, v in hf_model.state_dict().items()}
    specs = convert_huggingface.backbone_weight_specs(
        classifier.backbone, prefix="albert."
    ) + convert_huggingface.head_weight_specs(classifier)
    assign_weights(specs, state.get, "torch model")
    inputs = padded_inputs()
    expected = _torch_forward(hf_model, inputs).logits.numpy()
    np.testing.assert_allclose(classifier(inputs), expected, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(
        classifier.call_without_padding(inputs), expected, atol=TOLERANCE, rtol=0
    )


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_backbone_matches_keras_hub(grouping, tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    from tests.helpers import tiny_backbone_kwargs

    kwargs = tiny_backbone_kwargs(**grouping)
    theirs = randomize_keras_weights(keras_hub.models.AlbertBackbone(**kwargs))
    ours = AlbertBackbone(**kwargs)
    path = str(tmp_path / "keras_hub.weights.h5")
    theirs.save_weights(path)
    arrays = convert_keras_hub.h5_reader(path)
    specs = convert_keras_hub.backbone_weight_specs(ours)
    assert sorted(s.name for s in specs) == sorted(arrays)  # The map is complete.
    assign_weights(specs, arrays.get, path)
    inputs = padded_inputs()
    expected, outputs = theirs(inputs), ours(inputs)
    assert (
        _masked_max_diff(
            outputs["sequence_output"],
            expected["sequence_output"],
            inputs["padding_mask"],
        )
        <= TOLERANCE
    )
    np.testing.assert_allclose(
        outputs["pooled_output"], expected["pooled_output"], atol=TOLERANCE, rtol=0
    )


def test_lora_matches_keras_hub_and_their_files_load_both_ways(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    from tests.helpers import tiny_backbone_kwargs

    kwargs = tiny_backbone_kwargs(num_groups=2, num_inner_repetitions=1, num_layers=4)
    theirs = randomize_keras_weights(keras_hub.models.AlbertBackbone(**kwargs))
    ours = AlbertBackbone(**kwargs)
    path = str(tmp_path / "keras_hub.weights.h5")
    theirs.save_weights(path)
    assign_weights(
        convert_keras_hub.backbone_weight_specs(ours),
        convert_keras_hub.h5_reader(path).get,
        path,
    )
    theirs.enable_lora(2)
    ours.enable_lora(2)
    # As in keras-hub, only the query and value projections train: their
    # two factors (and biases), in each of the 2 groups' layers.
    assert [w.path for w in ours.trainable_weights] == [
        w.path for w in theirs.trainable_weights
    ]
    factors = [w for w in theirs.trainable_weights if "lora_kernel" in w.path]
    assert len(factors) == 2 * 2 * 2
    # Their factors, through their file, into ours; then ours back into theirs.
    for weight in factors:
        weight.assign(np.random.default_rng(0).normal(size=weight.shape) * 0.1)
    theirs.save_lora_weights(str(tmp_path / "theirs.lora.h5"))
    ours.load_lora_weights(str(tmp_path / "theirs.lora.h5"))
    inputs = padded_inputs()
    expected = theirs(inputs)["pooled_output"]
    np.testing.assert_allclose(
        ours(inputs)["pooled_output"], expected, atol=TOLERANCE, rtol=0
    )
    assert not np.allclose(expected, AlbertBackbone(**kwargs)(inputs)["pooled_output"])
    ours.save_lora_weights(str(tmp_path / "ours.lora.h5"))
    fresh = randomize_keras_weights(keras_hub.models.AlbertBackbone(**kwargs))
    fresh.enable_lora(2)
    fresh.set_weights(theirs.get_weights())  # Base weights; factors zeroed below.
    for weight in fresh.trainable_weights:
        if "lora_kernel" in weight.path:
            weight.assign(np.zeros(weight.shape))
    fresh.load_lora_weights(str(tmp_path / "ours.lora.h5"))
    np.testing.assert_allclose(
        fresh(inputs)["pooled_output"], expected, atol=TOLERANCE, rtol=0
    )
    with pytest.raises(ValueError, match="must end in `.lora.h5`"):
        ours.save_lora_weights(str(tmp_path / "x.h5"))
