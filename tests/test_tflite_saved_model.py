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
            str(tmp_path / "albert" / "1"),
            str(out),
            "--sequence-length",
            "16",
            "--verify",
            str(data),
        ]
    )
    assert code == 0
    assert json.loads((tmp_path / "from_export.json").read_text())["label_names"] == [
        "neg",
        "pos",
    ]
    # The build from the export equals the Keras model it was exported from.
    got = tflite.TFLiteClassifier(str(out)).predict(TINY_CORPUS)["logits"]
    np.testing.assert_allclose(
        got, classifier.predict(TINY_CORPUS, verbose=0), atol=1e-4
    )
