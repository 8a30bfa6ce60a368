"""Writes a TFLite build: the `.tflite` file, its labels and its metadata."""

import hashlib
import json
import logging
import os

from albert_tf.atomic_file import write_all
from albert_tf.tflite import converter
from albert_tf.tflite.quantization_config import QuantizationConfig

logger = logging.getLogger(__name__)


def sidecar_paths(tflite_path):
    """`(labels, metadata)` paths written beside a `.tflite` file."""
    stem = os.path.splitext(os.fspath(tflite_path))[0]
    return stem + ".labels.txt", stem + ".json"


def vocabulary_path(tflite_path):
    """The SentencePiece model written beside an ids-in build, for the app."""
    return os.path.splitext(os.fspath(tflite_path))[0] + ".spm"


def check_output_paths(tflite_path, input_kind, written=(), read=()):
    """Every file a build writes, refused if two are one file.

    A `.tflite` path named like a sidecar (`m.json`, or `m.spm` for an ids
    build) would have the flatbuffer and the sidecar overwrite each other.

    Args:
        tflite_path: str. The `.tflite` file.
        input_kind: str. `"ids"` builds also write the SentencePiece model.
        written: `(name, path)` pairs of other files written with the build
            (a `None` path is skipped).
        read: `(name, path)` pairs of inputs, which no output may replace.

    Returns:
        The paths to write: the `.tflite` file, its sidecars, then `written`.
    """
    labels, metadata = sidecar_paths(tflite_path)
    outputs = [
        ("the .tflite file", os.fspath(tflite_path)),
        ("its labels", labels),
        ("its metadata", metadata),
    ]
    if input_kind == "ids":
        outputs.append(("its SentencePiece model", vocabulary_path(tflite_path)))
    outputs += [(name, os.fspath(path)) for name, path in written if path]
    seen = {}
    for name, path in outputs:
        key = _file_key(path)
        if key in seen:
            raise ValueError(
                f"'{path}' would be written twice, as {seen[key]} and as {name}: "
                "name the output something like OUT.tflite (its sidecars are "
                "named after it without its extension)."
            )
        seen[key] = name
    for name, path in read:
        if path and _file_key(path) in seen:
            raise ValueError(
                f"{name} '{path}' would be overwritten by "
                f"{seen[_file_key(path)]}: choose another output path."
            )
    return [path for _, path in outputs]


def _file_key(path):
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def read_label_names(path):
    """Class names from a labels file (one per line), or `None` if absent."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def build_metadata(classifier, quantization, input_kind, sequence_length, content):
    """The JSON metadata an app needs to call the file (names, dtypes, shapes)."""
    tokenizer = classifier.preprocessor.tokenizer
    if input_kind == "text":
        inputs = [{"name": converter.TEXT_INPUT, "dtype": "string", "shape": [-1]}]
    else:
        inputs = [
            {"name": n, "dtype": "int32", "shape": [1, sequence_length]}
            for n in converter.ID_INPUTS
        ]
    num_classes = classifier.num_classes
    positions = converter.signature_tensor_indices(content)
    for entry in inputs:
        entry.update(positions["inputs"][entry["name"]])
    outputs = [
        {
            "name": n,
            "dtype": "float32",
            "shape": [-1 if input_kind == "text" else 1, num_classes],
            **positions["outputs"][n],
        }
        for n in converter.OUTPUTS
    ]
    return {
        "format": "albert-tf tflite v1",
        "signature": converter.SIGNATURE_KEY,
        "input_kind": input_kind,
        "inputs": inputs,
        "outputs": outputs,
        "sequence_length": sequence_length,
        "quantization": quantization.mode,
        "num_classes": num_classes,
        "label_names": list(getattr(classifier, "label_names", None) or []),
        "vocabulary_size": tokenizer.vocabulary_size(),
        "vocabulary_sha256": hashlib.sha256(tokenizer.proto).hexdigest(),
        "lowercase": tokenizer.lowercase,
        "strip_accents": tokenizer.strip_accents,
        "special_token_ids": {
            "cls": tokenizer.cls_token_id,
            "sep": tokenizer.sep_token_id,
            "pad": tokenizer.pad_token_id,
            "unk": tokenizer.unk_token_id,
        },
        # Original ALBERT re-splits pieces like "▁9," into "▁9" and ",".
        "digit_comma_rule": True,
        "required_custom_ops": converter.custom_ops(content),
        "min_runtime_version": converter.min_runtime_version(content),
        "size_bytes": len(content),
    }


def build_tflite(
    classifier, path, quantization=None, input_kind="text", sequence_length=None
):
    """Converts `classifier` and writes `path` plus labels and metadata beside it.

    Args:
        classifier: `albert_tf.models.TextClassifier` with a preprocessor.
        path: str. The `.tflite` file to write (`<stem>.labels.txt` and
            `<stem>.json` are written beside it).
        quantization: `QuantizationConfig`; `None` is float32.
        input_kind: str. `"text"` or `"ids"`.
        sequence_length: int. Defaults to the preprocessor's.

    Returns:
        The metadata dict (also written as JSON).

    Example:
    ```python
    from albert_tf import tflite
    tflite.build_tflite(classifier, "sst2.tflite", tflite.dynamic())
    ```
    """
    check_output_paths(path, input_kind)  # Before a minutes-long conversion.
    quantization = quantization or QuantizationConfig()
    sequence_length = sequence_length or classifier.preprocessor.sequence_length
    content = converter.convert(classifier, quantization, input_kind, sequence_length)
    return write_build(
        classifier, path, content, quantization, input_kind, sequence_length
    )


def write_build(
    classifier,
    path,
    content,
    quantization,
    input_kind,
    sequence_length,
    verification=None,
):
    """Writes converted `content` to `path` with labels and metadata beside it.

    Ids-in builds also get `<stem>.spm`, the SentencePiece model the app
    tokenizes with. `verification` (a `Verification`) is recorded in the
    metadata, so a gated build can be told from an unchecked one.
    """
    check_output_paths(path, input_kind)
    metadata = build_metadata(
        classifier, quantization, input_kind, sequence_length, content
    )
    metadata["verification"] = None if verification is None else verification.as_dict()
    labels_path, metadata_path = sidecar_paths(path)
    names = metadata["label_names"] or [str(i) for i in range(metadata["num_classes"])]
    files = [(labels_path, ("\n".join(names) + "\n").encode("utf-8"))]
    if input_kind == "ids":
        vocabulary = vocabulary_path(path)
        files.append((vocabulary, classifier.preprocessor.tokenizer.proto))
        metadata["vocabulary_file"] = os.path.basename(vocabulary)
    files.append((metadata_path, (json.dumps(metadata, indent=2) + "\n").encode()))
    # All written before any is renamed, the .tflite file last: an app that
    # sees it finds its sidecars, and a failed rebuild leaves the old set.
    write_all(files + [(path, content)])
    logger.info(
        "Wrote %s (%d bytes), %s, %s.", path, len(content), labels_path, metadata_path
    )
    return metadata
