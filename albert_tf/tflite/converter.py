"""Converts a trained ALBERT classifier to TFLite (pure functions).

Two kinds of build, one encoder:

- `input_kind="text"`: signature `serving_default`, input `text` (string,
  `[batch]`), outputs `logits` and `probabilities`. Tokenization runs in the
  file (`TFLiteTextPacker`: FastSentencepiece + builtins), and the encoder
  on real tokens only (`call_without_padding`): texts are padded to
  `sequence_length`, and a short one costs what its tokens cost.
- `input_kind="ids"`: inputs `token_ids`, `segment_ids`, `padding_mask`
  (int32 `[1, sequence_length]`), the same outputs, builtins only, fixed
  shapes throughout (the padded encoder), as accelerator delegates want.
"""

import logging
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from ai_edge_litert import schema_py_generated as schema
from tensorflow.lite.python import convert as lite_convert

from albert_tf.models.task import inference_call
from albert_tf.tflite.quantization_config import QuantizationConfig
from albert_tf.tflite.tflite_text_packer import TFLiteTextPacker

logger = logging.getLogger(__name__)

SIGNATURE_KEY = "serving_default"
TEXT_INPUT = "text"
ID_INPUTS = ("token_ids", "segment_ids", "padding_mask")
OUTPUTS = ("logits", "probabilities")
INPUT_KINDS = ("text", "ids")
# int8 builds keep the attention core in float: QK^T, the masking select,
# softmax, AV and the reshapes/transposes between them. The mask fills padded
# scores with -1e9, and the quantizer hands that range to same-scale ops next
# to the select (TRANSPOSE included), rounding every real score to 0: a
# trained SST-2 model fell from 82.6 to 67.4%. Embeddings, layer norms and
# all dense layers (most of the compute) stay int8.
INT8_FLOAT_OPS = ("BATCH_MATMUL", "SOFTMAX", "SELECT_V2", "MUL", "RESHAPE", "TRANSPOSE")
# A quantized range reaching this far holds a mask fill value (-1e9), not
# an activation.
MASK_FILL_BOUND = 1e8
# tf-text ops with TFLite kernels (`tensorflow_text.tflite_registrar`).
TFTEXT_CUSTOM_OPS = frozenset(
    {
        "TFText>FastSentencepieceTokenize",
        "TFText>FastSentencepieceDetokenize",
        "TFText>RaggedTensorToTensor",
        "RaggedTensorToTensor",
        "TFText>RoundRobinTrim",
        "TFText>FastBertNormalize",
    }
)


def _check_classifier(classifier):
    if getattr(classifier, "preprocessor", None) is None:
        raise ValueError(
            "The classifier has no preprocessor: a TFLite build needs its "
            "tokenizer (vocabulary) and sequence length."
        )


def _outputs(classifier, inputs, unpadded=False):
    outputs = inference_call(classifier, unpadded)(inputs)
    logits, probabilities = classifier.logits_and_probabilities(outputs)
    return {"logits": logits, "probabilities": probabilities}


def _serving_function(classifier, input_kind, sequence_length):
    """The `serving_default` tf.function of a build.

    The classifier is captured by closure, not tracked: only the variables
    the function reads end up in the SavedModel, so the converter can freeze
    them all (Keras' other traced functions would keep them mutable).
    """
    if input_kind == "text":
        packer = TFLiteTextPacker(classifier.preprocessor.tokenizer, sequence_length)

        @tf.function(
            autograph=False,
            input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)],
        )
        def serve_text(text):
            return _outputs(classifier, packer(text), unpadded=True)

        return serve_text

    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([1, sequence_length], tf.int32, name=n) for n in ID_INPUTS
        ],
    )
    def serve_ids(token_ids, segment_ids, padding_mask):
        inputs = {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
        }
        return _outputs(classifier, inputs)

    return serve_ids


def _tokenizer_function(tokenizer, sequence_length):
    packer = TFLiteTextPacker(tokenizer, sequence_length)

    @tf.function(
        autograph=False,
        input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)],
    )
    def tokenize(text):
        return packer(text)

    return tokenize


def _representative_dataset(classifier, texts, input_kind, sequence_length):
    """Calibration samples: real texts through the model's own tokenizer."""
    preprocessor = classifier.preprocessor

    def generate():
        for text in texts:
            if input_kind == "text":
                # The calibrator reads fixed-width bytes correctly; object
                # arrays gave it wrong strings (and ranges 5-10x off).
                yield {TEXT_INPUT: np.array([text.encode("utf-8")], dtype=np.bytes_)}
                continue
            x = preprocessor(tf.constant([text]), sequence_length=sequence_length)
            yield {name: x[name].numpy().astype(np.int32) for name in ID_INPUTS}

    return generate


def _builtin_code(code):
    # Old files keep codes < 127 in the deprecated field only.
    return max(code.BuiltinCode(), code.DeprecatedBuiltinCode())


def custom_ops(model_content):
    """The custom op names a `.tflite` flatbuffer needs, sorted."""
    model = schema.Model.GetRootAsModel(model_content, 0)
    names = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if _builtin_code(code) == schema.BuiltinOperator.CUSTOM:
            names.add(code.CustomCode().decode("utf-8"))
    return sorted(names)


def signature_tensor_indices(model_content):
    """Where each `serving_default` input and output sits in the file.

    Apps that feed tensors by position (Java `runForMultipleInputsOutputs`,
    Swift `copy(_:toInputAt:)`) need the position: the order is not the
    signature's; `Interpreter.getInputIndex(name)` needs the tensor's name.

    Returns:
        `{"inputs": {name: {"position": int, "tensor": str}}, "outputs": ...}`.
    """
    model = schema.Model.GetRootAsModel(model_content, 0)
    for i in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(i)
        if signature.SignatureKey().decode("utf-8") != SIGNATURE_KEY:
            continue
        subgraph = model.Subgraphs(signature.SubgraphIndex())

        def positions(tensors, count, listed, subgraph=subgraph):
            order = listed.tolist()
            return {
                tensors(j).Name().decode("utf-8"): {
                    "position": order.index(tensors(j).TensorIndex()),
                    "tensor": subgraph.Tensors(tensors(j).TensorIndex())
                    .Name()
                    .decode("utf-8"),
                }
                for j in range(count)
            }

        return {
            "inputs": positions(
                signature.Inputs, signature.InputsLength(), subgraph.InputsAsNumpy()
            ),
            "outputs": positions(
                signature.Outputs, signature.OutputsLength(), subgraph.OutputsAsNumpy()
            ),
        }
    raise ValueError(f"The TFLite file has no '{SIGNATURE_KEY}' signature.")


def min_runtime_version(model_content):
    """The oldest TFLite runtime the converter says can run the file, or None."""
    model = schema.Model.GetRootAsModel(model_content, 0)
    for i in range(model.MetadataLength()):
        metadata = model.Metadata(i)
        if metadata.Name().decode("utf-8") == "min_runtime_version":
            data = model.Buffers(metadata.Buffer()).DataAsNumpy().tobytes()
            return data.rstrip(b"\0").decode("utf-8") or None
    return None


def _check_int8_ranges(model_content):
    """Raises if an integer tensor's range holds the mask fill value.

    Tensors read only by SHAPE are skipped: their values are never used.
    """
    model = schema.Model.GetRootAsModel(model_content, 0)
    limits = {
        schema.TensorType.INT8: (-128, 127),
        schema.TensorType.INT16: (-32768, 32767),
    }
    leaked = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        read = set(subgraph.OutputsAsNumpy().tolist())
        for j in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(j)
            code = model.OperatorCodes(op.OpcodeIndex())
            if _builtin_code(code) != schema.BuiltinOperator.SHAPE:
                read.update(op.InputsAsNumpy().tolist())
        for i in sorted(read - {-1}):  # -1: an omitted optional input.
            tensor = subgraph.Tensors(i)
            quantization = tensor.Quantization()
            if tensor.Type() not in limits or quantization is None:
                continue
            if quantization.ScaleLength() == 0:
                continue
            scale = quantization.ScaleAsNumpy().astype(np.float64)
            zero_point = quantization.ZeroPointAsNumpy().astype(np.float64)
            low, high = limits[tensor.Type()]
            lowest = float(((low - zero_point) * scale).min())
            highest = float(((high - zero_point) * scale).max())
            if min(lowest, -highest) <= -MASK_FILL_BOUND:
                name = tensor.Name().decode("utf-8")
                leaked.append(f"{name} [{lowest:.3g}, {highest:.3g}]")
    if leaked:
        raise ValueError(
            f"int8 quantization gave {len(leaked)} tensor(s) a range holding the "
            f"attention mask fill value (beyond +-{MASK_FILL_BOUND:g}), which "
            f"rounds every real value to 0; keep their ops in float "
            f"(INT8_FLOAT_OPS): {leaked[:3]}"
        )


def convert(classifier, quantization=None, input_kind="text", sequence_length=None):
    """Converts a Keras text classifier to a TFLite flatbuffer.

    Args:
        classifier: `albert_tf.models.TextClassifier` with a preprocessor
            (an `AlbertTokenizer` inside).
        quantization: `albert_tf.tflite.QuantizationConfig`; `None` is float32.
        input_kind: str. `"text"` (string in, tokenizer inside) or `"ids"`.
        sequence_length: int. Packed length; defaults to the preprocessor's.

    Returns:
        The `.tflite` file contents (bytes).

    Example:
    ```python
    from albert_tf import tflite
    content = tflite.convert(classifier, tflite.dynamic(), input_kind="text")
    ```
    """
    quantization = quantization or QuantizationConfig()
    if input_kind not in INPUT_KINDS:
        raise ValueError(
            f"Unknown input kind {input_kind!r}: expected one of {INPUT_KINDS}."
        )
    _check_classifier(classifier)
    if input_kind == "text" and getattr(classifier.preprocessor, "text_pairs", None):
        raise ValueError(
            "This model was trained on text pairs, and a text build takes one "
            "string per example. Build with --input ids, and pack `[CLS] a [SEP] "
            "b [SEP]` in the app (segment_ids 1 for b)."
        )
    sequence_length = sequence_length or classifier.preprocessor.sequence_length
    # A Keras model's backbone knows it; a `SavedModelClassifier` reads it
    # from the export's position embeddings.
    longest = getattr(
        getattr(classifier, "backbone", classifier), "max_sequence_length", None
    )
    if longest and sequence_length > longest:
        raise ValueError(
            f"sequence_length {sequence_length} is longer than the model's "
            f"max_sequence_length {longest} (its position embeddings)."
        )
    function = _serving_function(classifier, input_kind, sequence_length)
    return _convert_function(
        function,
        classifier.weights,
        lambda c: _configure(c, classifier, quantization, input_kind, sequence_length),
        f"{input_kind}-in {quantization.mode} (length {sequence_length})",
    )


def convert_tokenizer(tokenizer, sequence_length):
    """A tokenizer-only TFLite file: `text` -> ids, segments and padding mask.

    Pairs with an ids-in build when an app wants the encoder on a delegate
    (NNAPI, Core ML) and the tokenizer on the CPU.

    Args:
        tokenizer: `albert_tf.models.AlbertTokenizer`.
        sequence_length: int. Packed length.

    Returns:
        The `.tflite` file contents (bytes).
    """

    def configure(converter):
        converter.allow_custom_ops = True
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]

    function = _tokenizer_function(tokenizer, sequence_length)
    return _convert_function(function, [], configure, "tokenizer")


def _convert_function(function, weights, configure, description):
    module = tf.Module()
    module.serve = function
    # Track the weights (the tf.Variables under the Keras variables), not the
    # Keras model: its other traced functions would keep them mutable.
    module.weights = [v.value if isinstance(v, keras.Variable) else v for v in weights]
    with tempfile.TemporaryDirectory(prefix="albert_tflite_") as saved_model_dir:
        # A SavedModel round trip freezes the Keras variables into constants.
        tf.saved_model.save(
            module, saved_model_dir, signatures={SIGNATURE_KEY: module.serve}
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model_dir, signature_keys=[SIGNATURE_KEY]
        )
        # Read-only weights must become constants (resource variables would
        # be uninitialised in the interpreter).
        converter.experimental_enable_resource_variables = False
        configure(converter)
        with warnings.catch_warnings():
            # int8 calibration runs TF's own (deprecated) interpreter; the
            # warning would tell users to change code that is not theirs.
            warnings.filterwarnings(
                "ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated"
            )
            content = converter.convert()
        if getattr(converter, "_experimental_calibrate_only", False):
            # Calibrated float model -> int8, sensitive ops denylisted.
            content = lite_convert.mlir_quantize(
                content, denylisted_ops=list(INT8_FLOAT_OPS)
            )
            _check_int8_ranges(content)
    unexpected = set(custom_ops(content)) - TFTEXT_CUSTOM_OPS
    if unexpected:
        raise ValueError(
            f"The TFLite graph needs ops without TFLite kernels: {sorted(unexpected)}."
        )
    logger.info("Converted the %s build: %.2f MB.", description, len(content) / 2**20)
    return content


def _configure(converter, classifier, quantization, input_kind, sequence_length):
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if input_kind == "text":
        converter.allow_custom_ops = True
        # Lets int8 calibration run the tf-text kernels.
        converter.target_spec._experimental_custom_op_registerers = list(
            tf_text.tflite_registrar.SELECT_TFTEXT_OPS
        )
    if quantization.mode != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization.mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization.mode == "int8":
        converter.representative_dataset = _representative_dataset(
            classifier, quantization.representative_texts, input_kind, sequence_length
        )
        # Calibrate only; `_convert_function` quantizes with a denylist (the
        # public converter API cannot keep chosen ops in float).
        converter._experimental_calibrate_only = True
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.target_spec.supported_ops = ops
