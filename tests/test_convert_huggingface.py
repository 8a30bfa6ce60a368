"""Hugging Face checkpoints -> albert_tf, against transformers itself.

Each checkpoint is written by `transformers` (`save_pretrained`) with every
weight random (biases and LayerNorms too, so a mis-mapped one shows) and the
tiny SentencePiece vocabulary; nothing touches the network.
"""

import json
import sys

import numpy as np
import pytest

from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTokenizer
from albert_tf.models import TextClassifier
from tests.helpers import padded_inputs
from tests.helpers import randomize_torch_weights
from tests.helpers import tiny_hf_albert_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-5
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
TEXTS = ["The quick brown fox jumped over the lazy dog.", "What an amazing movie!"]


def _write_checkpoint(
    directory, tiny_proto, classifier=True, groups=1, inner=None, **save_kwargs
):
    """An HF ALBERT checkpoint directory, as `save_pretrained` writes it."""
    torch.manual_seed(groups)
    config = tiny_hf_albert_config(
        num_hidden_groups=groups,
        inner_group_num=groups if inner is None else inner,
        num_hidden_layers=2 * groups,
        **(
            {"id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}}
            if classifier
            else {}
        ),
    )
    model_cls = (
        transformers.AlbertForSequenceClassification
        if classifier
        else transformers.AlbertModel
    )
    model = randomize_torch_weights(model_cls(config).eval(), seed=groups)
    model.save_pretrained(directory, **save_kwargs)
    vocab = directory / "source.spm"
    vocab.write_bytes(tiny_proto)
    tokenizer = transformers.AlbertTokenizer(str(vocab))  # The slow, original one.
    tokenizer.save_pretrained(directory)
    vocab.unlink()
    return model, tokenizer


def _torch_inputs(inputs):
    return dict(
        input_ids=torch.tensor(inputs["token_ids"], dtype=torch.long),
        token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long),
        attention_mask=torch.tensor(inputs["padding_mask"], dtype=torch.long),
    )


def _assert_pooled_output_matches(backbone, model):
    inputs = padded_inputs()
    with torch.no_grad():
        expected = model(**_torch_inputs(inputs)).pooler_output.numpy()
    np.testing.assert_allclose(
        backbone(inputs)["pooled_output"], expected, atol=TOLERANCE, rtol=0
    )


@pytest.mark.parametrize("groups, inner", [(1, 1), (2, 2), (2, 1)])
def test_fine_tuned_classifier_becomes_a_ready_classifier(
    tmp_path, tiny_proto, groups, inner
):
    model, hf_tokenizer = _write_checkpoint(
        tmp_path, tiny_proto, groups=groups, inner=inner
    )
    classifier = TextClassifier.from_preset(str(tmp_path))  # Class inferred.

    assert isinstance(classifier, AlbertTextClassifier)
    assert classifier.label_names == ["negative", "neutral", "positive"]
    assert classifier.backbone.num_groups == groups
    assert classifier.backbone.num_inner_repetitions == inner
    # Raw strings in, through our in-graph tokenizer, vs HF's tokenizer + model.
    encoded = hf_tokenizer(
        TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        expected = model(**encoded).logits.numpy()
    ours = classifier.predict_on_batch(TEXTS)
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE, rtol=0)


def test_albert_model_checkpoint_loads_as_backbone(tmp_path, tiny_proto):
    model, _ = _write_checkpoint(tmp_path, tiny_proto, classifier=False, groups=2)
    backbone = AlbertBackbone.from_preset(str(tmp_path))
    inputs = padded_inputs()
    with torch.no_grad():
        expected = model(**_torch_inputs(inputs))
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
    # A backbone-only checkpoint has no head: a classifier needs num_classes.
    with pytest.raises(ValueError, match="num_classes"):
        AlbertTextClassifier.from_preset(str(tmp_path))
    classifier = AlbertTextClassifier.from_preset(str(tmp_path), num_classes=4)
    assert classifier.num_classes == 4


def test_v1_exact_gelu_checkpoint_matches_transformers(tmp_path, tiny_proto):
    # albert-base-v1 and friends say hidden_act="gelu" (erf), v2 "gelu_new" (tanh).
    config = tiny_hf_albert_config(hidden_act="gelu")
    model = randomize_torch_weights(transformers.AlbertModel(config).eval(), seed=3)
    model.save_pretrained(tmp_path)
    backbone = AlbertBackbone.from_preset(str(tmp_path))
    assert backbone.activation == "gelu"
    inputs = padded_inputs()
    with torch.no_grad():
        expected = model(**_torch_inputs(inputs)).pooler_output.numpy()
    np.testing.assert_allclose(
        backbone(inputs)["pooled_output"], expected, atol=TOLERANCE, rtol=0
    )
    # The tanh GELU is measurably different on these weights.
    tanh_gelu = AlbertBackbone.from_preset(str(tmp_path), activation="gelu_approximate")
    assert np.abs(tanh_gelu(inputs)["pooled_output"] - expected).max() > 10 * TOLERANCE

    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    with pytest.raises(ValueError, match="hidden_act='relu'.*'gelu', 'gelu_new'"):
        AlbertBackbone.from_preset(str(tmp_path))
    # Without hidden_act, transformers' AlbertConfig default: the tanh GELU.
    del config["hidden_act"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert transformers.AlbertConfig.from_pretrained(tmp_path).hidden_act == "gelu_new"
    assert AlbertBackbone.from_preset(str(tmp_path)).activation == "gelu_approximate"
    relative = {**config, "position_embedding_type": "relative_key"}
    (tmp_path / "config.json").write_text(json.dumps(relative))
    with pytest.raises(ValueError, match="position_embedding_type='relative_key'"):
        AlbertBackbone.from_preset(str(tmp_path))


def test_tokenizer_follows_tokenizer_config(tmp_path, tiny_proto):
    _, hf_tokenizer = _write_checkpoint(tmp_path, tiny_proto, classifier=False)
    tokenizer = AlbertTokenizer.from_preset(str(tmp_path))
    text = "Café NAÏVE résumé"
    assert tokenizer(text).numpy().tolist() == hf_tokenizer.encode(
        text, add_special_tokens=False
    )
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config["keep_accents"] = True
    config["do_lower_case"] = False
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = AlbertTokenizer.from_preset(str(tmp_path))
    assert (tokenizer.strip_accents, tokenizer.lowercase) == (False, False)


def test_pytorch_bin_is_read_without_pickle_execution(tmp_path, tiny_proto):
    model, _ = _write_checkpoint(
        tmp_path, tiny_proto, classifier=False, safe_serialization=False
    )
    assert (tmp_path / "pytorch_model.bin").is_file()
    _assert_pooled_output_matches(AlbertBackbone.from_preset(str(tmp_path)), model)


@pytest.mark.parametrize(
    "safe, index_file",
    [(True, "model.safetensors.index.json"), (False, "pytorch_model.bin.index.json")],
)
def test_sharded_checkpoints_load_every_shard(tmp_path, tiny_proto, safe, index_file):
    model, _ = _write_checkpoint(
        tmp_path,
        tiny_proto,
        classifier=False,
        groups=2,
        max_shard_size="10KB",
        safe_serialization=safe,
    )
    index = json.loads((tmp_path / index_file).read_text())
    assert len(set(index["weight_map"].values())) > 2
    assert not (tmp_path / index_file.removesuffix(".index.json")).exists()
    _assert_pooled_output_matches(AlbertBackbone.from_preset(str(tmp_path)), model)
    # A shard outside the checkpoint folder is refused, not read.
    some_weight = next(iter(index["weight_map"]))
    index["weight_map"][some_weight] = "../elsewhere.safetensors"
    (tmp_path / index_file).write_text(json.dumps(index))
    with pytest.raises(ValueError, match="'../elsewhere.safetensors' is not a file"):
        AlbertBackbone.from_preset(str(tmp_path))


def test_pytorch_bin_without_torch_is_refused(tmp_path, tiny_proto, monkeypatch):
    _write_checkpoint(tmp_path, tiny_proto, classifier=False, safe_serialization=False)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails.
    with pytest.raises(ValueError, match="torch is not installed.*safetensors"):
        AlbertBackbone.from_preset(str(tmp_path))


def test_corrupt_safetensors_header_is_named(tmp_path, tiny_proto):
    _write_checkpoint(tmp_path, tiny_proto, classifier=False)
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:16] = b"{broken!"  # Inside the JSON header.
    path.write_bytes(bytes(data))
    with pytest.raises(
        ValueError, match="model.safetensors' is not a valid safetensors"
    ):
        AlbertBackbone.from_preset(str(tmp_path))


def test_unknown_model_type_and_wrong_shapes(tmp_path, tiny_proto):
    _write_checkpoint(tmp_path, tiny_proto, classifier=False)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())

    config_path.write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type='bert'"):
        AlbertBackbone.from_preset(str(tmp_path))

    typo = {k: v for k, v in config.items() if k != "num_hidden_layers"}
    config_path.write_text(json.dumps({**typo, "num_hidden_layer": 2}))
    with pytest.raises(ValueError, match="config.json has no num_hidden_layers: an"):
        AlbertBackbone.from_preset(str(tmp_path))

    config_path.write_text(json.dumps({**config, "vocab_size": 81}))
    with pytest.raises(
        ValueError,
        match=r"'embeddings.word_embeddings.weight' has shape \(80, 8\), "
        r"expected \(81, 8\)",
    ):
        AlbertBackbone.from_preset(str(tmp_path))


def test_missing_files_are_named(tmp_path, tiny_proto):
    _write_checkpoint(tmp_path, tiny_proto, classifier=False)
    (tmp_path / "spiece.model").unlink()
    with pytest.raises(FileNotFoundError, match="spiece.model"):
        AlbertTokenizer.from_preset(str(tmp_path))
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(
        FileNotFoundError,
        match="expected model.safetensors, .* or pytorch_model.bin.index.json",
    ):
        AlbertBackbone.from_preset(str(tmp_path))


def test_bfloat16_safetensors_are_read(tmp_path, tiny_proto):
    model, _ = _write_checkpoint(tmp_path, tiny_proto, classifier=False)
    model.to(torch.bfloat16).save_pretrained(tmp_path)
    backbone = AlbertBackbone.from_preset(str(tmp_path))
    expected = model.embeddings.word_embeddings.weight.float().detach().numpy()
    np.testing.assert_array_equal(backbone.token_embedding.embeddings.numpy(), expected)


def test_encoder_weights_the_config_does_not_use_are_a_warning(
    tmp_path, tiny_proto, caplog
):
    _write_checkpoint(tmp_path, tiny_proto, classifier=False, groups=2)
    with caplog.at_level("WARNING", logger="albert_tf"):
        AlbertBackbone.from_preset(str(tmp_path))
    assert "not used by its config" not in caplog.text
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_hidden_groups"] = 1  # Group 1's weights now have no place.
    (tmp_path / "config.json").write_text(json.dumps(config))
    with caplog.at_level("WARNING", logger="albert_tf"):
        AlbertBackbone.from_preset(str(tmp_path))
    assert "encoder weights are not used by its config" in caplog.text
    assert "albert_layer_groups.1." in caplog.text


def test_a_checkpoint_without_its_vocabulary_says_what_to_do(
    tmp_path, tiny_proto, tmp_path_factory
):
    _write_checkpoint(tmp_path, tiny_proto)
    (tmp_path / "spiece.model").unlink()  # As fine-tuned repos often are.
    # A cased fine-tune: its tokenizer_config.json still applies.
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config.update(do_lower_case=False, keep_accents=True)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="Copy the base model's spiece.model"):
        AlbertTextClassifier.from_preset(str(tmp_path))
    bare = AlbertTextClassifier.from_preset(str(tmp_path), preprocessor=None)
    assert bare.preprocessor is None and bare.num_classes == len(LABELS)
    # Or give the vocabulary (a training config's model.vocabulary does).
    tokenizer = AlbertTokenizer.from_preset(str(tmp_path), proto=tiny_proto)
    assert tokenizer.proto == tiny_proto
    assert (tokenizer.lowercase, tokenizer.strip_accents) == (False, False)
    from albert_tf import cli

    elsewhere = tmp_path_factory.mktemp("convert")
    vocabulary = elsewhere / "base_spiece.model"
    vocabulary.write_bytes(tiny_proto)
    out = elsewhere / "complete"
    args = ["convert", str(tmp_path), str(out), "--vocabulary", str(vocabulary)]
    assert cli.main(args) == 0
    complete = AlbertTextClassifier.from_preset(str(out))
    assert complete.preprocessor.tokenizer.proto == tiny_proto
    assert complete.preprocessor.tokenizer.lowercase is False
    np.testing.assert_array_equal(
        complete.backbone.token_embedding.embeddings.numpy(),
        bare.backbone.token_embedding.embeddings.numpy(),
    )


@pytest.mark.parametrize(
    "head", [{"num_labels": 1}, {"problem_type": "multi_label_classification"}]
)
def test_regression_and_multi_label_heads_load_as_backbones(
    tmp_path, tiny_proto, caplog, head
):
    # As transformers writes them (config.json has id2label, no num_labels).
    config = tiny_hf_albert_config(**head)
    model = transformers.AlbertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    (tmp_path / "spiece.model").write_bytes(tiny_proto)
    assert "num_labels" not in json.loads((tmp_path / "config.json").read_text())
    with caplog.at_level("WARNING", logger="albert_tf"):
        with pytest.raises(ValueError, match="has no classification head"):
            AlbertTextClassifier.from_preset(str(tmp_path))
    assert "AlbertTextClassifier is a single-label softmax classifier" in caplog.text
    # The backbone is there to fine-tune with a new head.
    fresh = AlbertTextClassifier.from_preset(str(tmp_path), num_classes=2)
    np.testing.assert_array_equal(
        fresh.backbone.token_embedding.embeddings.numpy(),
        model.albert.embeddings.word_embeddings.weight.detach().numpy(),
    )


def test_masked_lm_checkpoint_loads_with_a_fresh_pooler(tmp_path, tiny_proto, caplog):
    # E.g. after domain-adaptive pretraining: `AlbertForMaskedLM` has no pooler.
    model = transformers.AlbertForMaskedLM(tiny_hf_albert_config()).eval()
    model = randomize_torch_weights(model, seed=3)
    model.save_pretrained(tmp_path)
    (tmp_path / "spiece.model").write_bytes(tiny_proto)
    with caplog.at_level("WARNING", logger="albert_tf"):
        backbone = AlbertBackbone.from_preset(str(tmp_path))
    assert "has no pooler weights" in caplog.text
    inputs = padded_inputs()
    with torch.no_grad():
        expected = model.albert(**_torch_inputs(inputs)).last_hidden_state.numpy()
    mask = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        np.asarray(backbone(inputs)["sequence_output"])[mask],
        expected[mask],
        atol=TOLERANCE,
        rtol=0,
    )
    assert AlbertTextClassifier.from_preset(str(tmp_path), num_classes=2)


def test_a_classifier_whose_config_names_no_architecture_says_so(
    tmp_path, tiny_proto, caplog
):
    _write_checkpoint(tmp_path, tiny_proto)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["architectures"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with caplog.at_level("WARNING", logger="albert_tf"):
        classifier = AlbertTextClassifier.from_preset(str(tmp_path), num_classes=3)
    assert "names no architectures: only the backbone is loaded" in caplog.text
    assert '"architectures": ["AlbertForSequenceClassification"]' in caplog.text
    assert classifier.num_classes == 3


def test_layer_norm_eps_other_than_albert_s_is_a_warning(tmp_path, tiny_proto, caplog):
    _write_checkpoint(tmp_path, tiny_proto, classifier=False)
    config = json.loads((tmp_path / "config.json").read_text())
    with caplog.at_level("WARNING", logger="albert_tf"):
        AlbertBackbone.from_preset(str(tmp_path))
    assert "layer_norm_eps" not in caplog.text
    (tmp_path / "config.json").write_text(
        json.dumps({**config, "layer_norm_eps": 1e-5})
    )
    with caplog.at_level("WARNING", logger="albert_tf"):
        AlbertBackbone.from_preset(str(tmp_path))
    assert "layer_norm_eps=1e-05; AlbertBackbone uses 1e-12" in caplog.text


def test_naming_the_classes_of_a_checkpoint_with_label_i_names(
    tmp_path, tiny_proto, caplog
):
    _write_checkpoint(tmp_path, tiny_proto)
    config = json.loads((tmp_path / "config.json").read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(3)}
    (tmp_path / "config.json").write_text(json.dumps(config))
    kept = AlbertTextClassifier.from_preset(str(tmp_path))
    with caplog.at_level("WARNING", logger="albert_tf"):
        named = AlbertTextClassifier.from_preset(
            str(tmp_path), label_names=["neg", "neu", "pos"]
        )
    assert named.label_names == ["neg", "neu", "pos"] and not caplog.text
    np.testing.assert_array_equal(
        named.predict_on_batch(TEXTS), kept.predict_on_batch(TEXTS)
    )


def test_id2label_that_skips_a_class_is_refused(tmp_path, tiny_proto):
    _write_checkpoint(tmp_path, tiny_proto)
    config = json.loads((tmp_path / "config.json").read_text())
    config["id2label"] = {"0": "negative", "2": "positive", "3": "mixed"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"does not name classes 0\.\.2"):
        AlbertTextClassifier.from_preset(str(tmp_path))


def test_question_answering_checkpoint_loads_as_a_backbone(
    tmp_path, tiny_proto, caplog
):
    model = transformers.AlbertForQuestionAnswering(tiny_hf_albert_config()).eval()
    model.save_pretrained(tmp_path)
    (tmp_path / "spiece.model").write_bytes(tiny_proto)
    with caplog.at_level("WARNING", logger="albert_tf"):
        backbone = AlbertBackbone.from_preset(str(tmp_path))
    # Its head is not ours, as a classifier's or a masked LM's is not: no word
    # about it. Its missing pooler is worth one.
    assert "not used by its config" not in caplog.text
    assert "has no pooler weights" in caplog.text
    np.testing.assert_array_equal(
        backbone.token_embedding.embeddings.numpy(),
        model.albert.embeddings.word_embeddings.weight.detach().numpy(),
    )
