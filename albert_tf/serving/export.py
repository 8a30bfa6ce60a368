"""Exports a text classifier as a string-in SavedModel for TF Serving.

The graph holds the whole pipeline (ALBERT text preprocessing, SentencePiece,
packing, encoder, head), so TF Serving clients send raw text. Batches are
padded only to their longest text, capped at the model's sequence length.
"""

import json
import logging
import os
import shutil

import tensorflow as tf
import tensorflow_text as tf_text  # noqa: F401  Registers the ops we trace.
from tensorflow.core.protobuf import saved_model_pb2

from albert_tf.atomic_file import owned_temp_folder
from albert_tf.atomic_file import remove_dead_writers_folders
from albert_tf.atomic_file import write_text
from albert_tf.models.task import inference_call
from albert_tf.serving import batching_file
from albert_tf.serving import signatures as sig
from albert_tf.serving.model_manager import version_folders
from albert_tf.serving.preflight import preflight
from albert_tf.serving.warmup import WARMUP_TEXTS
from albert_tf.serving.warmup import write_warmup_file

logger = logging.getLogger(__name__)


class _ServingFunctions:
    """One `tf.function` per signature, over the classifier's Keras objects."""

    def __init__(self, classifier):
        if classifier.preprocessor is None:
            raise ValueError(
                "The classifier has no preprocessor: a string-in export needs "
                "its tokenizer. Attach one (e.g. `AlbertTextClassifierPreprocessor`)."
            )
        self.classifier = classifier
        self.preprocessor = classifier.preprocessor
        num_classes = classifier.num_classes
        names = classifier.label_names or [str(i) for i in range(num_classes)]
        self.label_names = list(names)
        self._labels = tf.constant(self.label_names, tf.string)

    def concrete_functions(self):
        """`{signature name: concrete function}` for `tf.saved_model.save`.

        A model trained on pairs gets the pair function as `serving_default`
        too; one trained on single texts gets no `predict_pair`.
        """
        pairs = self.preprocessor.text_pairs
        functions = {}
        if not pairs:
            functions[sig.PREDICT] = self.predict.get_concrete_function()
        if pairs is not False:
            functions[sig.PREDICT_PAIR] = self.predict_pair.get_concrete_function()
        if pairs:
            functions[sig.PREDICT] = functions[sig.PREDICT_PAIR]
        functions[sig.CLASSIFY] = self.classify.get_concrete_function()
        functions[sig.PREDICT_IDS] = self.predict_ids.get_concrete_function()
        return functions

    def trackable(self):
        """The state the signatures read, as a `tf.Module` to save.

        It holds the plain `tf.Variable`s under the Keras variables, not the
        Keras objects: Keras variables save as copies that the TF1/C++ loaders
        restore while the graph reads the originals, which stay
        uninitialised. It also holds tf-text's SentencePiece resource, which
        Keras does not track (keras-hub#1629). The functions themselves are
        saved once, as signatures only.
        """
        module = tf.Module(name="albert_serving")
        module.model_variables = [v.value for v in self.classifier.variables]
        module.sentencepiece = self.preprocessor.tokenizer._sentence_piece
        return module

    def _check_utf8(self, text, key):
        # The tokenizer would replace invalid bytes; a serving API rejects them.
        valid = tf.equal(
            tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace"),
            text,
        )
        bad = tf.cast(tf.where(tf.logical_not(valid))[:, 0], tf.int32)
        check = tf.debugging.Assert(
            tf.reduce_all(valid),
            [f"input '{key}' holds invalid UTF-8 at rows:", bad],
            summarize=10,
        )
        with tf.control_dependencies([check]):
            return tf.identity(text)

    def _outputs(self, features):
        # Padding takes no compute there: half of a batch of 32 SST-2
        # sentences is padding (benchmarks/RESULTS.md, serving).
        raw = inference_call(self.classifier)(features)
        logits, probabilities = self.classifier.logits_and_probabilities(raw)
        class_id = tf.argmax(raw, axis=-1, output_type=tf.int64)
        return {
            sig.LOGITS: logits,
            sig.PROBABILITIES: probabilities,
            sig.CLASS_ID: class_id,
            sig.LABEL: tf.gather(self._labels, class_id),
        }

    def _predict_texts(self, segments):
        features = self.preprocessor(segments, pad_to_longest=True)
        return self._outputs(features)

    @tf.function(
        autograph=False,
        input_signature=[tf.TensorSpec([None], tf.string, name=sig.TEXT)],
    )
    def predict(self, text):
        text = self._check_utf8(text, sig.TEXT)
        return self._predict_texts(text)

    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([None], tf.string, name=sig.TEXT_A),
            tf.TensorSpec([None], tf.string, name=sig.TEXT_B),
        ],
    )
    def predict_pair(self, text_a, text_b):
        check = tf.debugging.assert_equal(
            tf.shape(text_a),
            tf.shape(text_b),
            message=f"'{sig.TEXT_A}' and '{sig.TEXT_B}' must have the same length",
        )
        # First, so that this message (naming the inputs) is the one clients get.
        with tf.control_dependencies([check]):
            text_a = self._check_utf8(text_a, sig.TEXT_A)
            text_b = self._check_utf8(text_b, sig.TEXT_B)
        return self._predict_texts((text_a, text_b))

    @tf.function(
        autograph=False,
        input_signature=[tf.TensorSpec([None], tf.string, name=sig.CLASSIFY_INPUTS)],
    )
    def classify(self, inputs):
        # Calls the traced `predict`/`predict_pair` graphs instead of tracing
        # the model again: each trace of tokenizer and model costs seconds.
        features = tf.io.parse_example(
            inputs,
            {
                sig.EXAMPLE_TEXT: tf.io.FixedLenFeature([], tf.string),
                sig.EXAMPLE_TEXT_PAIR: tf.io.VarLenFeature(tf.string),
            },
        )
        text = self._check_utf8(features[sig.EXAMPLE_TEXT], sig.EXAMPLE_TEXT)
        pair = features[sig.EXAMPLE_TEXT_PAIR]
        pair_text = tf.sparse.to_dense(
            tf.sparse.reset_shape(pair, [tf.shape(text)[0], 1]), default_value=""
        )[:, 0]
        pairs = self.preprocessor.text_pairs
        per_example = tf.math.bincount(
            tf.cast(pair.indices[:, 0], tf.int32),
            minlength=tf.shape(text)[0],
            maxlength=tf.shape(text)[0],
        )
        if pairs is None:
            # Each example as what it carries: batches mix both, also across
            # the requests that TF Serving's batching puts together.
            rows = tf.range(tf.shape(text)[0])
            single, paired = tf.dynamic_partition(
                rows, tf.cast(per_example > 0, tf.int32), 2
            )
            pair_text = self._check_utf8(pair_text, sig.EXAMPLE_TEXT_PAIR)
            scores = tf.dynamic_stitch(
                [single, paired],
                [
                    self.predict(tf.gather(text, single))[sig.PROBABILITIES],
                    self.predict_pair(
                        tf.gather(text, paired), tf.gather(pair_text, paired)
                    )[sig.PROBABILITIES],
                ],
            )
        elif pairs:
            check = tf.debugging.Assert(
                tf.reduce_all(tf.equal(per_example, 1)),
                [
                    f"this model was trained on text pairs: every example needs "
                    f"one '{sig.EXAMPLE_TEXT_PAIR}' feature"
                ],
            )
            with tf.control_dependencies([check]):
                pair_text = self._check_utf8(pair_text, sig.EXAMPLE_TEXT_PAIR)
            scores = self.predict_pair(text, pair_text)[sig.PROBABILITIES]
        else:
            check = tf.debugging.Assert(
                tf.equal(tf.size(pair.values), 0),
                [
                    f"this model was trained on single texts: examples must not "
                    f"carry '{sig.EXAMPLE_TEXT_PAIR}'"
                ],
            )
            with tf.control_dependencies([check]):
                text = tf.identity(text)
            scores = self.predict(text)[sig.PROBABILITIES]
        classes = tf.tile(self._labels[tf.newaxis, :], [tf.shape(scores)[0], 1])
        return {sig.CLASSES: classes, sig.SCORES: scores}

    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name=sig.TOKEN_IDS),
            tf.TensorSpec([None, None], tf.int32, name=sig.SEGMENT_IDS),
            tf.TensorSpec([None, None], tf.int32, name=sig.PADDING_MASK),
        ],
    )
    def predict_ids(self, token_ids, segment_ids, padding_mask):
        checks = self._check_ids(token_ids, segment_ids, padding_mask)
        with tf.control_dependencies(checks):
            return self._outputs(
                {
                    sig.TOKEN_IDS: tf.identity(token_ids),
                    sig.SEGMENT_IDS: tf.identity(segment_ids),
                    sig.PADDING_MASK: tf.identity(padding_mask),
                }
            )

    def _check_ids(self, token_ids, segment_ids, padding_mask):
        # Without these, bad ids fail deep in the graph ("indices[0,1] = 99999
        # is not in [0, 30000)", "Expected size[0] in [0, 512]").
        backbone = self.classifier.backbone
        names = f"'{sig.TOKEN_IDS}', '{sig.SEGMENT_IDS}' and '{sig.PADDING_MASK}'"
        shape = tf.shape(token_ids)
        return [
            tf.debugging.assert_equal(
                tf.stack([shape, tf.shape(segment_ids), tf.shape(padding_mask)]),
                tf.stack([shape, shape, shape]),
                message=f"{names} must have the same shape",
            ),
            tf.debugging.assert_positive(
                shape[1],
                message=f"'{sig.TOKEN_IDS}' has rows of length 0: each row needs "
                "at least its [CLS] id",
            ),
            # Attention over no keys is undefined (and differs with dropout).
            tf.debugging.Assert(
                tf.reduce_all(tf.reduce_any(padding_mask != 0, axis=1)),
                [
                    f"'{sig.PADDING_MASK}' has rows of only 0s: each row needs "
                    "at least its [CLS] marked 1. Rows:",
                    tf.where(tf.reduce_all(padding_mask == 0, axis=1))[:, 0],
                ],
                summarize=10,
            ),
            tf.debugging.assert_less_equal(
                shape[1],
                backbone.max_sequence_length,
                message=f"'{sig.TOKEN_IDS}' is longer than the model's "
                f"max_sequence_length {backbone.max_sequence_length}",
            ),
            _assert_in_range(token_ids, backbone.vocabulary_size, sig.TOKEN_IDS),
            _assert_in_range(segment_ids, backbone.num_segments, sig.SEGMENT_IDS),
        ]


def _assert_in_range(ids, size, key):
    return tf.debugging.assert_equal(
        tf.reduce_all((ids >= 0) & (ids < size)),
        True,
        message=f"'{key}' values must be in [0, {size})",
    )


def _set_classify_method_name(saved_model_dir):
    """TF2 saves every signature as Predict; TF Serving's Classify needs its own."""
    path = os.path.join(saved_model_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        meta_graph.signature_def[sig.CLASSIFY].method_name = sig.CLASSIFY_METHOD
    with open(path, "wb") as f:
        f.write(saved_model.SerializeToString())


def models_config_text(model_name, base_path):
    """A TF Serving `--model_config_file` for one model."""
    return (
        "model_config_list {\n"
        "  config {\n"
        f'    name: "{model_name}"\n'
        f'    base_path: "{base_path}"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy { latest { num_versions: 1 } }\n"
        "  }\n"
        "}\n"
    )


def read_preprocessing(version_dir):
    """The export's recorded `{sequence_length, lowercase, strip_accents,
    text_pairs}` (`assets.extra/albert_tf_preprocessing.json`), or `{}`."""
    recorded = os.path.join(version_dir, "assets.extra", sig.PREPROCESSING_FILE)
    if not os.path.isfile(recorded):
        return {}
    with open(recorded, encoding="utf-8") as f:
        try:
            settings = json.load(f)
        except ValueError as e:
            raise ValueError(f"{recorded}: not valid JSON ({e}).") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{recorded}: expected a JSON object of settings")
    return settings


def _next_free_version(export_base, versions):
    """The version after the highest of `versions` whose name is not taken
    (by a plain file of that name, say)."""
    version = max(versions, default=0) + 1
    while os.path.exists(os.path.join(export_base, str(version))):
        version += 1
    return version


def _write_server_files(export_base, model_name, batching):
    """Writes `models.config` and `batching_parameters.txt` beside the versions.

    Existing files may hold the user's edits: `models.config` is kept as it
    is, and only the batching fields passed in `batching` are changed.
    """
    config_path = os.path.join(export_base, sig.MODELS_CONFIG_FILE)
    config = models_config_text(model_name, f"/models/{model_name}")
    if os.path.basename(export_base) != model_name:
        logger.warning(
            "models.config points TF Serving at /models/%s: mount %s there "
            "(docker run -v %s:/models/%s ...), not at /models/%s.",
            model_name,
            export_base,
            export_base,
            model_name,
            os.path.basename(export_base),
        )
    existing = _read(config_path) if os.path.exists(config_path) else None
    if existing is None:
        write_text(config_path, config)
    elif f'name: "{model_name}"' not in existing:
        # Clients would ask for `model_name` and get NOT_FOUND.
        logger.warning(
            "Kept the existing %s, which does not name the model '%s': a server "
            "started from it serves this export under the name written there. "
            "Edit or delete that file.",
            config_path,
            model_name,
        )
    elif existing != config:
        logger.warning(
            "Kept the existing %s, which differs from what this export writes "
            "(delete it to get a fresh one).",
            config_path,
        )
    batching_path = os.path.join(export_base, sig.BATCHING_FILE)
    given = {k: v for k, v in batching.items() if v is not None}
    if not os.path.exists(batching_path):
        write_text(batching_path, batching_file.default_text(**given))
        return
    old = _read(batching_path)
    new = batching_file.set_fields(old, batching_path, **given)
    if new != old:
        write_text(batching_path, new)
        logger.info("Updated %s in %s.", ", ".join(sorted(given)), batching_path)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def export_classifier(
    classifier,
    export_base,
    version=None,
    max_batch_size=None,
    batch_timeout_micros=None,
    model_name=None,
    warmup_texts=WARMUP_TEXTS,
    run_preflight=True,
):
    """Exports a classifier as a TF Serving version folder, atomically.

    Writes `export_base/<version>/` (SavedModel, `assets.extra/` with the warmup
    requests, label file and preprocessing settings) by building it in a temp
    folder beside it and renaming, so a polling model server never sees it
    half-written. Also
    writes `models.config` and `batching_parameters.txt` examples beside the
    version folders; existing ones are kept, as they may hold your edits.

    The Predict signatures return `logits` (the classifier's logits; for a
    softmax head, its log-probabilities, as in TFLite builds and
    `albert_tf.training.predict`), `probabilities`, `class_id` and `label`
    (the classifier's `label_names`, or the id as text). Texts must be valid
    UTF-8.

    Args:
        classifier: an `albert_tf.models.TextClassifier` with a preprocessor,
            or a path accepted by `albert_tf.models.load_classifier` (a
            `.keras` file or a preset directory).
        export_base: str. The model base path (holds version folders).
        version: int. The version to write; defaults to the next integer.
        max_batch_size: int. Set in `batching_parameters.txt` (default: 32
            in a new file; an existing file keeps its value).
        batch_timeout_micros: int. Set in `batching_parameters.txt` (default:
            2000 in a new file; an existing file keeps its value).
        model_name: str. Name in `models.config` and the warmup requests;
            defaults to the base folder's name.
        warmup_texts: sequence of str. Texts of the warmup requests.
        run_preflight: bool. Check the export (ops, signatures) before renaming
            it into place.

    Returns:
        The path of the version folder.

    Example:
    ```python
    from albert_tf.serving.export import export_classifier
    export_classifier("classifier.keras", "export/albert")  # export/albert/1
    ```
    """
    for name, value in (
        ("max_batch_size", max_batch_size),
        ("batch_timeout_micros", batch_timeout_micros),
    ):
        lowest = batching_file.lowest_value(name)
        if value is not None and value < lowest:  # Before a minutes-long load.
            raise ValueError(f"`{name}` must be {lowest} or more. Received: {value}")
    if isinstance(classifier, (str, os.PathLike)):
        from albert_tf.models import load_classifier

        classifier = load_classifier(classifier)
    export_base = os.path.abspath(os.fspath(export_base))
    if os.path.exists(export_base) and not os.path.isdir(export_base):
        raise FileExistsError(
            f"Export base '{export_base}' is a file; it must be a folder (the "
            "version folders go inside it)."
        )
    os.makedirs(export_base, exist_ok=True)
    existing = version_folders(export_base, ready_only=False)
    next_free = version is None
    if next_free:
        version = _next_free_version(export_base, existing)
    version = int(version)
    if version < 1:
        raise ValueError(f"`version` must be a positive integer. Received: {version}")
    final = os.path.join(export_base, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"Version folder already exists: '{final}'. Pass another version "
            "(`--version` on the command line), or none for the next one."
        )
    model_name = model_name or os.path.basename(export_base)

    functions = _ServingFunctions(classifier)
    # Hidden temp name: TF Serving and our server only load integer names.
    remove_dead_writers_folders(export_base)  # Killed exports' leftovers.
    tmp = owned_temp_folder(export_base, str(version))
    try:
        tf.saved_model.save(
            functions.trackable(), tmp, signatures=functions.concrete_functions()
        )
        _set_classify_method_name(tmp)
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        pairs = functions.preprocessor.text_pairs
        texts = tf.constant(list(warmup_texts))
        features = functions.preprocessor(
            (texts, texts[::-1]) if pairs else texts, pad_to_longest=True
        )
        write_warmup_file(
            os.path.join(extra, sig.WARMUP_FILE),
            model_name,
            warmup_texts,
            features,
            text_pairs=pairs,
        )
        write_text(
            os.path.join(extra, sig.LABELS_FILE),
            "\n".join(functions.label_names) + "\n",
        )
        tokenizer = functions.preprocessor.tokenizer
        preprocessing = {
            "sequence_length": functions.preprocessor.sequence_length,
            "lowercase": tokenizer.lowercase,
            "strip_accents": tokenizer.strip_accents,
            "text_pairs": pairs,
        }
        write_text(
            os.path.join(extra, sig.PREPROCESSING_FILE),
            json.dumps(preprocessing, indent=2) + "\n",
        )
        if run_preflight:
            report = preflight(tmp)
            logger.info(
                "Preflight passed; ops outside core TensorFlow: %s",
                ", ".join(report.non_core_ops) or "none",
            )
            logger.debug("%s", report.format())
        # Before the version appears: a crash right after its rename would
        # leave a servable version without them.
        _write_server_files(
            export_base,
            model_name,
            {
                "max_batch_size": max_batch_size,
                "batch_timeout_micros": batch_timeout_micros,
            },
        )
        while True:
            try:
                os.rename(tmp, final)
                break
            except OSError:
                if not (next_free and os.path.exists(final)):
                    raise
                # Another export took this version meanwhile: take the next.
                taken = version
                existing = version_folders(export_base, ready_only=False)
                version = _next_free_version(export_base, [version, *existing])
                final = os.path.join(export_base, str(version))
                logger.warning(
                    "Version %d was written by another export meanwhile; this "
                    "one is version %d.",
                    taken,
                    version,
                )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Exported '%s' version %d to %s", model_name, version, final)
    return final
