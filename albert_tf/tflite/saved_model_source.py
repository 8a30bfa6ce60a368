"""Uses a string-in TF Serving export (`albert-tf export`) as a TFLite source.

A SavedModel holds no Keras objects, so this adapter gives the converter and
the verifier what they need from one: the encoder (the export's
`predict_ids` signature), its variables, the tokenizer (rebuilt from the
SentencePiece model embedded in the graph) and float reference outputs (the
export's own string-in `serving_default` signature, which also checks that
the TFLite tokenization matches the export's).
"""

import os

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  Registers the ops the export uses.
from tensorflow.core.protobuf import saved_model_pb2

from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer

PREDICT_IDS = "predict_ids"
PREDICT_TEXT = "serving_default"
LABELS_FILE = os.path.join("assets.extra", "labels.txt")


def is_saved_model(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def _sentencepiece_proto(path):
    """The SentencePiece model bytes in the export's `SentencepieceOp` node."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        graph = meta_graph.graph_def
        nodes = list(graph.node)
        for function in graph.library.function:
            nodes.extend(function.node_def)
        for node in nodes:
            if node.op == "SentencepieceOp" and node.attr["model"].s:
                return node.attr["model"].s
    raise ValueError(
        f"{path}: no SentencePiece model found in the SavedModel graph "
        "(expected a string-in `albert-tf export` with a SentencepieceOp)."
    )


class SavedModelClassifier:
    """The parts of a Keras `TextClassifier` a TFLite build uses, from an export.

    Args:
        path: str. A SavedModel version folder written by `albert-tf export`.
        sequence_length: int. Packed length of the TFLite build (the export
            pads to the longest text, so it does not record one).
        lowercase: bool. The export's tokenizer setting (ALBERT: `True`).
        strip_accents: bool. The export's tokenizer setting (ALBERT: `True`).
    """

    def __init__(self, path, sequence_length, lowercase=True, strip_accents=True):
        if not sequence_length:
            raise ValueError(
                f"{path} is a SavedModel: pass --sequence-length (it records none)."
            )
        self.path = path
        self.loaded = tf.saved_model.load(path)
        missing = {PREDICT_IDS, PREDICT_TEXT} - set(self.loaded.signatures)
        if missing:
            raise ValueError(
                f"{path}: SavedModel lacks signature(s) {sorted(missing)}; "
                f"has {sorted(self.loaded.signatures)}."
            )
        tokenizer = AlbertTokenizer(
            proto=_sentencepiece_proto(path),
            lowercase=lowercase,
            strip_accents=strip_accents,
        )
        self.preprocessor = AlbertTextClassifierPreprocessor(tokenizer, sequence_length)
        # `albert-tf export` tracks the model's variables as `model_variables`.
        self.weights = list(getattr(self.loaded, "model_variables", []))
        self.activation = None
        labels_path = os.path.join(path, LABELS_FILE)
        self.label_names = None
        if os.path.isfile(labels_path):
            with open(labels_path, encoding="utf-8") as f:
                self.label_names = [line.rstrip("\n") for line in f if line.strip()]
        outputs = self.loaded.signatures[PREDICT_IDS].structured_outputs
        self.num_classes = int(outputs["logits"].shape[-1])

    def __call__(self, inputs, training=False):
        """Ids -> logits, through the export's `predict_ids` signature."""
        return self.loaded.signatures[PREDICT_IDS](**inputs)["logits"]

    def predict(self, texts, batch_size=32, verbose=0):
        """Float logits of the export's own string-in signature."""
        run = self.loaded.signatures[PREDICT_TEXT]
        outputs = [
            run(text=tf.constant(texts[i : i + batch_size]))["logits"].numpy()
            for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(outputs) if outputs else np.zeros([0, self.num_classes])
