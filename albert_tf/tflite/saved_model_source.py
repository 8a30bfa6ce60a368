"""Uses a string-in TF Serving export (`albert-tf export`) as a TFLite source.

A SavedModel holds no Keras objects, so this adapter gives the converter and
the verifier what they need from one: the encoder (the export's
`predict_ids` signature), its variables, the longest input its position
embeddings take, and the tokenizer (rebuilt from the SentencePiece model
embedded in the graph, with the export's recorded settings). Verification
runs `predict_ids` on texts tokenized by that tokenizer in Python, as for a
Keras model; the export's own string-in signature is not used.
"""

import os
import re

import tensorflow as tf
import tensorflow_text  # noqa: F401  Registers the ops the export uses.
from tensorflow.core.protobuf import saved_model_pb2

from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer
from albert_tf.serving import signatures as sig
from albert_tf.serving.export import read_preprocessing
from albert_tf.tflite.build import read_label_names

# `albert-tf export` saves `AlbertBackbone`'s position embeddings under this.
_POSITION_EMBEDDINGS = re.compile(r"(^|/)position_embedding/embeddings(:\d+)?$")


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
        sequence_length: int. Packed length of the TFLite build. Defaults to
            the one the export records
            (`assets.extra/albert_tf_preprocessing.json`).
        lowercase: bool. The export's tokenizer setting; defaults to the
            recorded one, else `True` (ALBERT's).
        strip_accents: bool. As `lowercase`.

    Attributes:
        max_sequence_length: int or `None`. The longest input the export's
            position embeddings take (`None` if it has none by that name).
    """

    def __init__(self, path, sequence_length=None, lowercase=None, strip_accents=None):
        recorded = read_preprocessing(path)
        sequence_length = sequence_length or recorded.get("sequence_length")
        if not sequence_length:
            raise ValueError(
                f"{path} records no sequence length (exported by an older "
                f"albert-tf: no assets.extra/{sig.PREPROCESSING_FILE}): pass "
                "--sequence-length."
            )
        if recorded.get("text_pairs"):
            raise ValueError(
                f"{path} is a model trained on text pairs; a TFLite text build "
                "takes one string per example. Build from the .keras model with "
                "--input ids instead."
            )
        if lowercase is None:
            lowercase = recorded.get("lowercase", True)
        if strip_accents is None:
            strip_accents = recorded.get("strip_accents", True)
        self.path = path
        self.loaded = tf.saved_model.load(path)
        missing = {sig.PREDICT_IDS, sig.PREDICT} - set(self.loaded.signatures)
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
        self.max_sequence_length = next(
            (
                int(v.shape[0])
                for v in self.weights
                if _POSITION_EMBEDDINGS.search(v.name)
            ),
            None,
        )
        self.activation = None
        self.label_names = read_label_names(
            os.path.join(path, "assets.extra", sig.LABELS_FILE)
        )
        outputs = self.loaded.signatures[sig.PREDICT_IDS].structured_outputs
        self.num_classes = int(outputs["logits"].shape[-1])

    def logits_and_probabilities(self, logits):
        """As `TextClassifier.logits_and_probabilities`: the export's logits
        are log-probabilities already for a softmax head."""
        logits = tf.cast(logits, tf.float32)
        return logits, tf.nn.softmax(logits, axis=-1)

    def __call__(self, inputs, training=False):
        """Ids -> logits, through the export's `predict_ids` signature."""
        return self.loaded.signatures[sig.PREDICT_IDS](**inputs)["logits"]
