"""Original Google ALBERT (TF1) checkpoints -> albert_tf.

The test writes a release directory by hand: `albert_config.json`, a TF1
checkpoint saved by `tf.compat.v1.train.Saver` under the exact variable names
and shapes of google-research/albert, and `30k-clean.model`. The peer is
transformers' own TF1 importer, `load_tf_weights_in_albert`.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTokenizer
from tests.helpers import padded_inputs

TOLERANCE = 1e-5
CONFIG = {
    "vocab_size": 80,
    "embedding_size": 8,
    "hidden_size": 16,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 16,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
}


def _original_variables(config, num_classes=None):
    """google-research/albert's variable names and shapes for a config."""
    e, h, i = (
        config["embedding_size"],
        config["hidden_size"],
        config["intermediate_size"],
    )
    variables = {
        "bert/embeddings/word_embeddings": (config["vocab_size"], e),
        "bert/embeddings/token_type_embeddings": (config["type_vocab_size"], e),
        "bert/embeddings/position_embeddings": (config["max_position_embeddings"], e),
        "bert/embeddings/LayerNorm/gamma": (e,),
        "bert/embeddings/LayerNorm/beta": (e,),
        "bert/encoder/embedding_hidden_mapping_in/kernel": (e, h),
        "bert/encoder/embedding_hidden_mapping_in/bias": (h,),
        "bert/pooler/dense/kernel": (h, h),
        "bert/pooler/dense/bias": (h,),
        "global_step": (),
    }
    for g in range(config["num_hidden_groups"]):
        for k in range(config["inner_group_num"]):
            p = f"bert/encoder/transformer/group_{g}/inner_group_{k}/"
            for name in ("query", "key", "value"):
                variables[p + f"attention_1/self/{name}/kernel"] = (h, h)
                variables[p + f"attention_1/self/{name}/bias"] = (h,)
            variables.update(
                {
                    p + "attention_1/output/dense/kernel": (h, h),
                    p + "attention_1/output/dense/bias": (h,),
                    p + "LayerNorm/gamma": (h,),
                    p + "LayerNorm/beta": (h,),
                    p + "ffn_1/intermediate/dense/kernel": (h, i),
                    p + "ffn_1/intermediate/dense/bias": (i,),
                    p + "ffn_1/intermediate/output/dense/kernel": (i, h),
                    p + "ffn_1/intermediate/output/dense/bias": (h,),
                    p + "LayerNorm_1/gamma": (h,),
                    p + "LayerNorm_1/beta": (h,),
                }
            )
    if num_classes:
        variables["output_weights"] = (num_classes, h)
        variables["output_bias"] = (num_classes,)
    return variables


def write_release(
    directory,
    tiny_proto,
    groups,
    num_classes=None,
    step=1000,
    inner=None,
    seed=None,
    prefix="",
):
    """Writes an original-layout ALBERT release with random weights.

    `prefix` goes before the encoder's variable names ("module/" when
    `run_classifier.py` fine-tuned the TF-Hub module; its head has none).
    """
    config = dict(
        CONFIG,
        num_hidden_layers=2 * groups,
        num_hidden_groups=groups,
        inner_group_num=groups if inner is None else inner,
    )
    (directory / "albert_config.json").write_text(json.dumps(config))
    (directory / "30k-clean.model").write_bytes(tiny_proto)
    rng = np.random.default_rng(groups if seed is None else seed)
    graph = tf.Graph()
    with graph.as_default():
        for name, shape in _original_variables(config, num_classes).items():
            name = prefix + name if name.startswith("bert/") else name
            if name == "global_step":
                value = np.array(step, np.int64)
            elif name.endswith(("gamma",)):
                value = 1.0 + 0.1 * rng.standard_normal(shape).astype(np.float32)
            else:
                value = 0.1 * rng.standard_normal(shape).astype(np.float32)
            tf.compat.v1.Variable(value, name=name)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(directory / "model.ckpt"), global_step=step)
    return config


def _word_embeddings(prefix):
    reader = tf.train.load_checkpoint(str(prefix))
    return reader.get_tensor("bert/embeddings/word_embeddings")


def _hf_reference(directory, config, inputs):
    """transformers' AlbertModel loaded with its own TF1 importer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.albert.modeling_albert import load_tf_weights_in_albert

    hf_config = transformers.AlbertConfig(**{**config, "hidden_act": "gelu_new"})
    model = transformers.AlbertModel(hf_config).eval()
    load_tf_weights_in_albert(model, hf_config, str(directory / "model.ckpt-1000"))
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(inputs["token_ids"], dtype=torch.long),
            token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long),
            attention_mask=torch.tensor(inputs["padding_mask"], dtype=torch.long),
        )


@pytest.mark.parametrize("groups, inner", [(1, 1), (2, 2), (2, 1)])
def test_release_checkpoint_matches_transformers_importer(
    tmp_path, tiny_proto, groups, inner
):
    config = write_release(tmp_path, tiny_proto, groups, inner=inner)
    backbone = AlbertBackbone.from_preset(str(tmp_path))
    assert backbone.num_groups == groups
    assert backbone.num_inner_repetitions == inner
    inputs = padded_inputs()
    expected = _hf_reference(tmp_path, config, inputs)
    outputs = backbone(inputs)
    np.testing.assert_allclose(
        outputs["pooled_output"], expected.pooler_output.numpy(), atol=TOLERANCE, rtol=0
    )
    mask = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        np.asarray(outputs["sequence_output"])[mask],
        expected.last_hidden_state.numpy()[mask],
        atol=TOLERANCE,
        rtol=0,
    )
    tokenizer = AlbertTokenizer.from_preset(str(tmp_path))
    assert tokenizer.proto == tiny_proto


def test_run_classifier_head_is_loaded(tmp_path, tiny_proto):
    write_release(tmp_path, tiny_proto, groups=1, num_classes=3)
    classifier = AlbertTextClassifier.from_preset(str(tmp_path), preprocessor=None)
    assert classifier.num_classes == 3
    reader = tf.train.load_checkpoint(str(tmp_path / "model.ckpt-1000"))
    np.testing.assert_array_equal(
        classifier.output_dense.kernel.numpy(), reader.get_tensor("output_weights").T
    )
    np.testing.assert_array_equal(
        classifier.output_dense.bias.numpy(), reader.get_tensor("output_bias")
    )


def test_wrong_shape_names_the_variable(tmp_path, tiny_proto):
    write_release(tmp_path, tiny_proto, groups=1)
    config = json.loads((tmp_path / "albert_config.json").read_text())
    config["intermediate_size"] = 64
    (tmp_path / "albert_config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError,
        match=r"'bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/"
        r"dense/kernel' has shape \(16, 32\), expected \(16, 64\)",
    ):
        AlbertBackbone.from_preset(str(tmp_path))


def test_missing_groups_are_reported(tmp_path, tiny_proto):
    write_release(tmp_path, tiny_proto, groups=1)
    config = json.loads((tmp_path / "albert_config.json").read_text())
    config.update(num_hidden_groups=2, num_hidden_layers=2)
    (tmp_path / "albert_config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError, match="missing weights 'bert/encoder/transformer/group_1"
    ):
        AlbertBackbone.from_preset(str(tmp_path))


def test_encoder_weights_the_config_does_not_use_are_a_warning(
    tmp_path, tiny_proto, caplog
):
    write_release(tmp_path, tiny_proto, groups=2)
    config = json.loads((tmp_path / "albert_config.json").read_text())
    config["num_hidden_groups"] = 1  # Group 1's weights now have no place.
    (tmp_path / "albert_config.json").write_text(json.dumps(config))
    with caplog.at_level("WARNING", logger="albert_tf"):
        AlbertBackbone.from_preset(str(tmp_path))
    assert "encoder weights are not used by its config" in caplog.text
    assert "group_1/" in caplog.text


def test_the_checkpoint_file_or_else_the_newest_step_is_loaded(tmp_path, tiny_proto):
    write_release(tmp_path, tiny_proto, groups=1, step=1000, seed=1)
    write_release(tmp_path, tiny_proto, groups=1, step=2000, seed=2)
    old, new = (_word_embeddings(tmp_path / f"model.ckpt-{s}") for s in (1000, 2000))
    assert np.abs(old - new).max() > 0.01

    def loaded():
        backbone = AlbertBackbone.from_preset(str(tmp_path))
        return backbone.token_embedding.embeddings.numpy()

    # The Saver's `checkpoint` file names the step to use.
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path), "model.ckpt-1000")
    np.testing.assert_array_equal(loaded(), old)
    # Without it (releases are often copied without it): the newest step.
    (tmp_path / "checkpoint").unlink()
    np.testing.assert_array_equal(loaded(), new)


def test_tf_hub_module_variable_names_load(tmp_path, tiny_proto):
    write_release(tmp_path, tiny_proto, groups=1, num_classes=2, prefix="module/")
    reader = tf.train.load_checkpoint(str(tmp_path / "model.ckpt-1000"))
    assert "bert/embeddings/word_embeddings" not in reader.get_variable_to_shape_map()
    classifier = AlbertTextClassifier.from_preset(str(tmp_path), preprocessor=None)
    np.testing.assert_array_equal(
        classifier.backbone.token_embedding.embeddings.numpy(),
        reader.get_tensor("module/bert/embeddings/word_embeddings"),
    )
    np.testing.assert_array_equal(
        classifier.backbone.pooled_dense.kernel.numpy(),
        reader.get_tensor("module/bert/pooler/dense/kernel"),
    )


def test_an_activation_albert_never_used_is_refused(tmp_path, tiny_proto):
    config = write_release(tmp_path, tiny_proto, groups=1)
    (tmp_path / "albert_config.json").write_text(
        json.dumps({**config, "hidden_act": "relu"})
    )
    with pytest.raises(ValueError, match="relu"):
        AlbertBackbone.from_preset(str(tmp_path))


def test_a_regression_head_loads_as_a_backbone(tmp_path, tiny_proto, caplog):
    # run_classifier.py's STS-B head: output_weights [1, hidden].
    write_release(tmp_path, tiny_proto, groups=1, num_classes=1)
    with caplog.at_level("WARNING", logger="albert_tf"):
        with pytest.raises(ValueError, match="has no classification head"):
            AlbertTextClassifier.from_preset(str(tmp_path), preprocessor=None)
    assert "has a regression head" in caplog.text
    fresh = AlbertTextClassifier.from_preset(
        str(tmp_path), num_classes=2, preprocessor=None
    )
    np.testing.assert_array_equal(
        fresh.backbone.token_embedding.embeddings.numpy(),
        _word_embeddings(tmp_path / "model.ckpt-1000"),
    )


def test_a_tf_hub_module_loads_once_given_its_albert_config(tmp_path, tiny_proto):
    release, hub = tmp_path / "release", tmp_path / "hub"
    release.mkdir()
    config = write_release(release, tiny_proto, groups=1)
    # A TF1 hub module: a SavedModel whose variables keep the release's names.
    (hub / "variables").mkdir(parents=True)
    (hub / "assets").mkdir()
    for path in release.glob("model.ckpt-1000.*"):
        suffix = path.name[len("model.ckpt-1000") :]
        (hub / "variables" / f"variables{suffix}").write_bytes(path.read_bytes())
    (hub / "assets" / "30k-clean.model").write_bytes(tiny_proto)
    (hub / "saved_model.pb").write_bytes(b"")
    (hub / "tfhub_module.pb").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as error:
        AlbertBackbone.from_preset(str(hub))
    assert "TF-Hub module: put the model's albert_config.json" in str(error.value)
    assert "albert-tf export" not in str(error.value)
    (hub / "albert_config.json").write_text(json.dumps(config))
    backbone = AlbertBackbone.from_preset(str(hub))
    np.testing.assert_array_equal(
        backbone.token_embedding.embeddings.numpy(),
        _word_embeddings(release / "model.ckpt-1000"),
    )
    assert AlbertTokenizer.from_preset(str(hub)).proto == tiny_proto
