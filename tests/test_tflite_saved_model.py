"""A TF Serving export (SavedModel) as the source of a TFLite build."""

import json

import keras
import numpy as np
import pytest

from albert_tf import tflite
from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer
from tests.helpers import TINY_CORPUS
from tests.helpers import tiny_backbone_kwargs

export = pytest.importorskip("albert_tf.serving.export")


@pytest.mark.slow
def test_text_build_from_serving_export_matches_keras(tiny_proto, tmp_path):
    from albert_tf.cli import main

    keras.utils.set_random_seed(2)  # Also seeds Keras initializers.
    tokenizer = AlbertTokenizer(proto=tiny_proto)
    preprocessor = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=16)
    backbone = AlbertBackbone(
        **tiny_backbone_kwargs(vocabulary_size=tokenizer.vocabulary_size())
    )
    classifier = AlbertTextClassifier(
        backbone, num_classes=2, preprocessor=preprocessor, label_names=["neg", "pos"]
    )
    export.export_classifier(
        classifier, str(tmp_path / "albert"), version=1, run_preflight=False
    )
    data = tmp_path / "dev.tsv"
    data.write_text(
        "sentence\tlabel\n"
        + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(TINY_CORPUS))
    )
    out = tmp_path / "from_export.tflite"
    code = main(
        [
            "tflite",
            str(tmp_path / "albert"),  # An export base: its newest version.
            str(out),  # The export records its sequence length.
            "--verify",
            str(data),
        ]
    )
    assert code == 0
    assert json.loads((tmp_path / "from_export.json").read_text())["label_names"] == [
        "neg",
        "pos",
    ]
    assert (
        json.loads((tmp_path / "from_export.json").read_text())["sequence_length"] == 16
    )
    # The build from the export equals the Keras model it was exported from.
    got = tflite.TFLiteClassifier(str(out)).predict(TINY_CORPUS)
    expected = classifier.predict(TINY_CORPUS, verbose=0)
    np.testing.assert_allclose(got["logits"], expected, atol=1e-4)
    # Labels come from the from_export.labels.txt sidecar.
    assert list(got["label"]) == [["neg", "pos"][i] for i in expected.argmax(-1)]


def test_export_records_its_preprocessing(tiny_proto, tmp_path, capsys):
    from albert_tf.cli import main
    from albert_tf.tflite.saved_model_source import SavedModelClassifier

    keras.utils.set_random_seed(2)
    tokenizer = AlbertTokenizer(proto=tiny_proto, lowercase=False)
    preprocessor = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=12)
    backbone = AlbertBackbone(
        **tiny_backbone_kwargs(vocabulary_size=tokenizer.vocabulary_size())
    )
    classifier = AlbertTextClassifier(
        backbone, num_classes=2, preprocessor=preprocessor
    )
    path = export.export_classifier(
        classifier, str(tmp_path / "albert"), run_preflight=False
    )
    source = SavedModelClassifier(path)
    assert source.preprocessor.sequence_length == 12
    assert source.preprocessor.tokenizer.lowercase is False
    assert source.preprocessor.tokenizer.strip_accents is True
    texts = ["The Quick Fox", "the quick fox"]
    np.testing.assert_array_equal(
        source.preprocessor(texts)["token_ids"], preprocessor(texts)["token_ids"]
    )
    assert (
        SavedModelClassifier(path, sequence_length=8).preprocessor.sequence_length == 8
    )
    # Its position embeddings (tiny_backbone_kwargs: 16) bound the length,
    # checked before converting as for a .keras model.
    assert source.max_sequence_length == 16
    out = tmp_path / "long.tflite"
    args = ["tflite", path, str(out), "--input", "ids", "--sequence-length", "32"]
    assert main(args) == 1
    assert (
        "sequence_length 32 is longer than the model's max_sequence_length 16"
        in capsys.readouterr().err
    )
    assert not out.exists()
