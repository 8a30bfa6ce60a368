"""keras-hub preset directories -> albert_tf and back.

keras-hub writes its own preset (`save_to_preset`) with every weight random
(biases and LayerNorms too, so a mis-mapped one shows); we
load it, compare outputs on the same ids, save ours, and load our weight
files back into keras-hub's classes.
"""

import gc
import json

import numpy as np
import pytest

from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer
from albert_tf.models import Backbone
from tests.helpers import padded_inputs
from tests.helpers import randomize_keras_weights
from tests.helpers import tiny_backbone_kwargs

keras_hub = pytest.importorskip("keras_hub")

TOLERANCE = 1e-5


def _keras_hub_classifier(tiny_proto, groups):
    kwargs = tiny_backbone_kwargs(
        num_groups=groups, num_inner_repetitions=groups, num_layers=2 * groups
    )
    backbone = keras_hub.models.AlbertBackbone(**kwargs)
    tokenizer = keras_hub.models.AlbertTokenizer(proto=tiny_proto)
    preprocessor = keras_hub.models.AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=12
    )
    # keras-hub builds a preprocessor on its first call; an unbuilt one makes
    # the task's Functional constructor warn about "unbuilt state".
    preprocessor(["build"])
    classifier = keras_hub.models.AlbertTextClassifier(
        backbone, num_classes=3, preprocessor=preprocessor
    )
    # Not the initial weights (zero biases, unit gammas), so loading each is checked.
    return randomize_keras_weights(classifier, seed=groups)


@pytest.mark.parametrize("groups", [1, 2])
def test_keras_hub_preset_loads_and_goes_back(tmp_path, tiny_proto, groups):
    theirs = _keras_hub_classifier(tiny_proto, groups)
    theirs.save_to_preset(str(tmp_path / "keras_hub"))

    ours = AlbertTextClassifier.from_preset(str(tmp_path / "keras_hub"))
    assert ours.num_classes == 3
    assert ours.preprocessor.sequence_length == 12
    # keras-hub's config has no `lowercase`: our default (original ALBERT) applies.
    assert ours.preprocessor.tokenizer.lowercase is True
    inputs = padded_inputs()
    np.testing.assert_allclose(ours(inputs), theirs(inputs), atol=TOLERANCE, rtol=0)

    # And back: keras-hub reads the weight files albert_tf writes.
    ours.save_to_preset(str(tmp_path / "ours"))
    again = keras_hub.models.AlbertTextClassifier(
        keras_hub.models.AlbertBackbone(
            **tiny_backbone_kwargs(
                num_groups=groups, num_inner_repetitions=groups, num_layers=2 * groups
            )
        ),
        num_classes=3,
        preprocessor=None,
    )
    again.backbone.load_weights(str(tmp_path / "ours" / "model.weights.h5"))
    again.load_task_weights(str(tmp_path / "ours" / "task.weights.h5"))
    np.testing.assert_allclose(again(inputs), theirs(inputs), atol=TOLERANCE, rtol=0)


def test_keras_hub_backbone_and_tokenizer_presets(tmp_path, tiny_proto):
    theirs = _keras_hub_classifier(tiny_proto, 1)
    theirs.backbone.save_to_preset(str(tmp_path))
    theirs.preprocessor.tokenizer.save_to_preset(str(tmp_path))
    backbone = Backbone.from_preset(str(tmp_path))  # Class from config.json.
    assert isinstance(backbone, AlbertBackbone)
    inputs = padded_inputs()
    np.testing.assert_allclose(
        backbone(inputs)["pooled_output"],
        theirs.backbone(inputs)["pooled_output"],
        atol=TOLERANCE,
        rtol=0,
    )
    # No preprocessor.json: sequences as long as the backbone allows.
    preprocessor = AlbertTextClassifierPreprocessor.from_preset(str(tmp_path))
    assert preprocessor.sequence_length == 16
    # Without lowercasing, our ids equal keras-hub's on plain lowercase text.
    tokenizer = AlbertTokenizer.from_preset(str(tmp_path), lowercase=False)
    text = "the quick brown fox jumped over the lazy dog."
    assert (
        tokenizer(text).numpy().tolist()
        == np.asarray(theirs.preprocessor.tokenizer(text)).tolist()
    )


def test_wrong_class_and_missing_weights(tmp_path, tiny_proto):
    theirs = _keras_hub_classifier(tiny_proto, 1)
    theirs.backbone.save_to_preset(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(
        json.dumps({**config, "class_name": "BertBackbone"})
    )
    with pytest.raises(ValueError, match="'BertBackbone', expected 'AlbertBackbone'"):
        AlbertBackbone.from_preset(str(tmp_path))
    fields = {k: v for k, v in config["config"].items() if k != "hidden_dim"}
    (tmp_path / "config.json").write_text(json.dumps({**config, "config": fields}))
    with pytest.raises(ValueError, match=r"lacks the AlbertBackbone fields \['hidden"):
        AlbertBackbone.from_preset(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match="model.weights.h5"):
        AlbertBackbone.from_preset(str(tmp_path))


# keras-hub's SentencePieceTokenizer reads a proto path with a bare
# `open(proto, "rb").read()` (sentence_piece_tokenizer.py:204), leaking the file.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_convert_cli_writes_presets_keras_hub_loads(tmp_path, tiny_proto):
    from albert_tf import cli

    # A cased model trained on single texts: settings keras-hub cannot hold.
    preprocessor = AlbertTextClassifierPreprocessor(
        AlbertTokenizer(proto=tiny_proto, lowercase=False, strip_accents=False),
        sequence_length=12,
        text_pairs=False,
    )
    ours = AlbertTextClassifier(
        AlbertBackbone(**tiny_backbone_kwargs()),
        num_classes=2,
        preprocessor=preprocessor,
        label_names=["bad", "good"],
    )
    randomize_keras_weights(ours)
    ours.save_to_preset(str(tmp_path / "ours"))
    out = str(tmp_path / "for_keras_hub")
    assert (
        cli.main(["convert", str(tmp_path / "ours"), out, "--format", "keras_hub"]) == 0
    )

    theirs = keras_hub.models.AlbertTextClassifier.from_preset(out)
    assert type(theirs) is keras_hub.models.AlbertTextClassifier
    inputs = padded_inputs()
    np.testing.assert_allclose(theirs(inputs), ours(inputs), atol=TOLERANCE, rtol=0)
    text = "the quick brown fox jumped over the lazy dog."
    assert np.asarray(theirs.preprocessor.tokenizer(text)).tolist() == (
        ours.preprocessor.tokenizer(text).numpy().tolist()
    )
    # And the keras-hub-format directory still loads into albert_tf.
    again = AlbertTextClassifier.from_preset(out)
    np.testing.assert_allclose(again(inputs), ours(inputs), atol=TOLERANCE, rtol=0)
    # Kept in metadata.json, with the tokenizer's switches and `text_pairs`.
    assert again.label_names == ["bad", "good"]
    tokenizer = again.preprocessor.tokenizer
    assert (tokenizer.lowercase, tokenizer.strip_accents) == (False, False)
    assert again.preprocessor.text_pairs is False
    cased = ["The Quick Brown Fox JUMPED.", "Café"]
    np.testing.assert_allclose(
        again.predict_on_batch(cased), ours.predict_on_batch(cased), atol=TOLERANCE
    )
    gc.collect()  # Surface keras-hub's leaked file here, where it is ignored.


def test_exact_gelu_backbone_keeps_its_activation_and_refuses_keras_hub(
    tmp_path, tiny_proto, capsys
):
    from albert_tf import cli

    ours = AlbertBackbone(**tiny_backbone_kwargs(), activation="gelu")
    randomize_keras_weights(ours)
    ours.save_to_preset(str(tmp_path / "ours"))
    AlbertTokenizer(proto=tiny_proto).save_to_preset(str(tmp_path / "ours"))
    again = AlbertBackbone.from_preset(str(tmp_path / "ours"))
    assert again.activation == "gelu"
    inputs = padded_inputs()
    np.testing.assert_allclose(
        again(inputs)["pooled_output"], ours(inputs)["pooled_output"], atol=1e-6
    )
    # keras-hub would load these weights with the tanh GELU: refused, no output.
    out = tmp_path / "for_keras_hub"
    argv = ["convert", str(tmp_path / "ours"), str(out), "--format", "keras_hub"]
    assert cli.main(argv) != 0
    assert "activation='gelu'; keras-hub's" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match="one of \\['gelu', 'gelu_approximate'\\]"):
        AlbertBackbone(**tiny_backbone_kwargs(), activation="relu")
