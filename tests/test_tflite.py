"""TFLite builds: every mode and input kind runs in LiteRT's interpreter."""

import json
import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text
from sentencepiece import sentencepiece_model_pb2

from albert_tf import tflite
from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer
from albert_tf.tflite import converter
from tests.helpers import TINY_CORPUS
from tests.helpers import spread_weights
from tests.helpers import tiny_backbone_kwargs
from tests.helpers import train_tiny_sentencepiece

SEQUENCE_LENGTH = 16


def make_classifier(proto, sequence_length=SEQUENCE_LENGTH, label_names=None):
    tokenizer = AlbertTokenizer(proto=proto)
    preprocessor = AlbertTextClassifierPreprocessor(tokenizer, sequence_length)
    backbone = AlbertBackbone(
        **tiny_backbone_kwargs(vocabulary_size=tokenizer.vocabulary_size())
    )
    return AlbertTextClassifier(
        backbone, num_classes=2, preprocessor=preprocessor, label_names=label_names
    )


@pytest.fixture(scope="module")
def classifier(tiny_proto):
    keras.utils.set_random_seed(1)  # Also seeds Keras initializers.
    return spread_weights(
        make_classifier(tiny_proto, label_names=["negative", "positive"])
    )


def _int8_activation_ops(content):
    """Names of FULLY_CONNECTED/BATCH_MATMUL ops whose first input is int8."""
    model = tflite.TFLiteClassifier(content)
    tensors = {t["index"]: t for t in model.interpreter.get_tensor_details()}
    return [
        op["op_name"]
        for op in model.interpreter._get_ops_details()
        if op["op_name"] in ("FULLY_CONNECTED", "BATCH_MATMUL")
        and tensors[op["inputs"][0]]["dtype"] == np.int8
    ]


def _check_signature(model, input_kind):
    assert model.interpreter.get_signature_list() == {
        "serving_default": {
            "inputs": ["text"] if input_kind == "text" else sorted(converter.ID_INPUTS),
            "outputs": ["logits", "probabilities"],
        }
    }
    details = model.input_details
    if input_kind == "text":
        assert details["text"]["dtype"] == np.bytes_  # TFLite string tensor.
        assert list(details["text"]["shape_signature"]) == [-1]
    else:
        for name in converter.ID_INPUTS:
            assert details[name]["dtype"] == np.int32
            assert list(details[name]["shape"]) == [1, SEQUENCE_LENGTH]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["none", "float16", "dynamic", "int8"])
def test_every_mode_converts_and_runs_for_both_input_kinds(classifier, mode):
    texts = TINY_CORPUS[:3]
    config = (
        tflite.int8(TINY_CORPUS) if mode == "int8" else tflite.QuantizationConfig(mode)
    )
    outputs, contents = {}, {}
    for input_kind in ("text", "ids"):
        content = contents[input_kind] = tflite.convert(
            classifier, config, input_kind=input_kind
        )
        model = tflite.TFLiteClassifier(content)
        _check_signature(model, input_kind)
        expected_ops = (
            ["TFText>FastSentencepieceTokenize"] if input_kind == "text" else []
        )
        assert converter.custom_ops(content) == expected_ops  # ids: builtins only.
        outputs[input_kind] = model.predict(texts, preprocessor=classifier.preprocessor)
        # No texts: empty outputs of the same kind for both builds.
        empty = model.predict([], preprocessor=classifier.preprocessor)
        assert empty["logits"].shape == empty["probabilities"].shape == (0, 2)
        assert outputs[input_kind]["logits"].dtype == np.float32
        assert outputs[input_kind]["logits"].shape == (3, 2)
        np.testing.assert_allclose(
            outputs[input_kind]["probabilities"].sum(-1), 1.0, atol=1e-3
        )
        # int8 builds compute the encoder in int8; the others in float.
        assert bool(_int8_activation_ops(content)) == (mode == "int8")
        # Text builds run the encoder on real tokens (shapes vary); ids builds
        # keep fixed shapes throughout, as accelerator delegates want.
        tensors = model.interpreter.get_tensor_details()
        fixed = all(-1 not in t["shape_signature"] for t in tensors)
        assert fixed == (input_kind == "ids")
        ops = {op["op_name"] for op in model.interpreter._get_ops_details()}
        assert ("SCATTER_ND" in ops) == (input_kind == "text")
    logits = {kind: out["logits"] for kind, out in outputs.items()}
    assert np.ptp(logits["ids"], axis=0).max() > 0.1, "outputs ignore the input"
    # The same encoder behind both inputs, so the in-file tokenizer must give
    # the Keras preprocessor's ids. int8: the two graphs quantize differently
    # (dynamic vs static batch), measured ~15% of the logit range apart; a
    # wrong calibration or tokenization is ~65% apart.
    atol = 0.25 * np.abs(logits["ids"]).max() if mode == "int8" else 1e-5
    np.testing.assert_allclose(logits["text"], logits["ids"], atol=atol, rtol=0)
    if mode == "none":
        reference = classifier.predict(texts, verbose=0)
        np.testing.assert_allclose(
            outputs["text"]["logits"], reference, atol=1e-4, rtol=0
        )
        # Pairs run on the ids build (segment ids 1 for the second text).
        pairs = TINY_CORPUS[3:6]
        got = model.predict(texts, preprocessor=classifier.preprocessor, pairs=pairs)
        reference = classifier.predict((texts, pairs), verbose=0)
        np.testing.assert_allclose(got["logits"], reference, atol=1e-4, rtol=0)
        assert np.abs(got["logits"] - logits["ids"]).max() > 1e-3
        # One pair given as two bare strings is one row.
        one = model.predict(
            texts[0], preprocessor=classifier.preprocessor, pairs=pairs[0]
        )
        np.testing.assert_allclose(one["logits"], got["logits"][:1], atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="pass the second texts as `pairs=`"):
            model.predict([(texts[0], pairs[0])], preprocessor=classifier.preprocessor)
        text_build = tflite.TFLiteClassifier(contents["text"])
        with pytest.raises(ValueError, match="pairs need an ids-in build"):
            text_build.predict(texts, pairs=pairs)


@pytest.mark.slow
def test_bad_text_inputs_have_defined_results(classifier):
    model = tflite.TFLiteClassifier(tflite.convert(classifier, input_kind="text"))
    tokenizer = tflite.convert_tokenizer(
        classifier.preprocessor.tokenizer, SEQUENCE_LENGTH
    )
    ids = tflite.TFLiteClassifier(tokenizer).runner
    cls_id = classifier.preprocessor.tokenizer.cls_token_id
    sep_id = classifier.preprocessor.tokenizer.sep_token_id

    # A bare string is one text, not a list of 1-character texts.
    one = model.predict("a warm film")
    assert one["logits"].shape == (1, classifier.num_classes)
    np.testing.assert_array_equal(
        one["logits"], model.predict(["a warm film"])["logits"]
    )
    with pytest.raises(ValueError, match="received a tuple"):
        model.predict(("a warm film", "dull"))

    # Empty string: just [CLS] [SEP], as the Keras preprocessor does.
    empty = ids(text=np.array([""], dtype=object))
    assert empty["token_ids"][0, :3].tolist() == [cls_id, sep_id, 0]
    assert empty["padding_mask"][0].sum() == 2

    # 100 KB: truncated to the sequence length, same logits as Keras.
    long_text = "the quick brown fox " * 5000
    out = model.run(text=np.array([long_text], dtype=object))
    np.testing.assert_allclose(
        out["logits"], classifier.predict([long_text], verbose=0), atol=1e-4
    )
    long_ids = ids(text=np.array([long_text], dtype=object))["token_ids"]
    assert long_ids.shape == (1, SEQUENCE_LENGTH) and long_ids[0, -1] == sep_id

    # Invalid UTF-8: tokenized (bad bytes become <unk>; the Python tokenizer
    # drops them instead, a documented difference), no crash.
    bad = np.array([b"caf\xe9 \xff\xfe ok"], dtype=object)
    out = model.run(text=bad)
    assert np.isfinite(out["logits"]).all()

    # Empty batch: empty outputs of the right shape.
    out = model.run(text=np.array([], dtype=object))
    assert out["logits"].shape == (0, 2)


def _softmax_head(classifier, kernel_scale):
    """A softmax classifier on `classifier`'s backbone; a large `kernel_scale`
    makes its probabilities extreme."""
    model = AlbertTextClassifier(
        classifier.backbone,
        num_classes=2,
        preprocessor=classifier.preprocessor,
        activation="softmax",
    )
    model.output_dense.kernel.assign(model.output_dense.kernel * kernel_scale)
    return model


def test_ids_build_of_a_softmax_classifier_at_a_shorter_length(classifier):
    softmax = _softmax_head(classifier, 25.0)
    model = tflite.TFLiteClassifier(
        tflite.convert(softmax, input_kind="ids", sequence_length=8)
    )
    assert list(model.input_details["token_ids"]["shape"]) == [1, 8]
    texts = TINY_CORPUS[:4]
    x = softmax.preprocessor(tf.constant(texts), sequence_length=8)
    assert (x["padding_mask"].numpy()[:, -1] == 1).all()  # All truncated.
    expected = softmax(x).numpy()
    got = model.predict(texts, preprocessor=softmax.preprocessor)
    # The model ends in a softmax: probabilities as they are, logits their log.
    np.testing.assert_allclose(got["probabilities"], expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got["logits"], np.log(expected), atol=1e-4, rtol=0)
    assert got["class_id"].tolist() == expected.argmax(-1).tolist()
    # `verify` compares log-probabilities with log-probabilities: a float32
    # text build of the softmax head matches it, as any float32 build must.
    result = tflite.verify(
        softmax, tflite.convert(softmax), list(TINY_CORPUS), quantized=False
    )
    assert not result.failures and result.max_abs_logit_diff <= 1e-4, result


def test_verify_reads_texts_at_the_builds_length(classifier):
    texts = list(TINY_CORPUS)
    x = classifier.preprocessor(tf.constant(texts), sequence_length=8)
    assert (x["padding_mask"].numpy()[:, -1] == 1).any()  # Some are truncated.
    content = tflite.convert(classifier, input_kind="text", sequence_length=8)
    result = tflite.verify(
        classifier, content, texts, quantized=False, sequence_length=8
    )
    assert result.passed and result.max_abs_logit_diff <= 1e-4, result.summary()
    # At the preprocessor's length the float model reads more of each text.
    assert not tflite.verify(classifier, content, texts, quantized=False).passed


def test_reference_logits_of_a_saturated_softmax_head_stay_finite(classifier):
    from albert_tf.tflite import verification

    saturated = _softmax_head(classifier, 1e4)
    texts = list(TINY_CORPUS)
    assert (saturated.predict(texts, verbose=0) == 0).any()  # Underflowed.
    logits = verification.keras_logits(saturated, texts)
    # Floored like the TFLite build's log, so the two stay comparable.
    assert logits.min() == np.log(np.finfo(np.float32).tiny)


def test_tokenizer_build_keeps_the_lowercase_switch(tiny_proto):
    texts = TINY_CORPUS  # Capitals and accents.
    cased = AlbertTokenizer(proto=tiny_proto, lowercase=False)
    expected = AlbertTextClassifierPreprocessor(cased, SEQUENCE_LENGTH)(
        tf.constant(texts)
    )
    uncased = AlbertTextClassifierPreprocessor(
        AlbertTokenizer(proto=tiny_proto), SEQUENCE_LENGTH
    )(tf.constant(texts))
    assert (expected["token_ids"].numpy() != uncased["token_ids"].numpy()).any()
    _assert_tokenizer_build_gives(cased, texts, expected)


def test_text_build_collapses_whitespace_whatever_the_vocabulary_says(tmp_path):
    # A vocabulary trained with remove_extra_whitespaces=False keeps runs of
    # spaces; ALBERT's preprocessing collapses them before SentencePiece.
    proto = train_tiny_sentencepiece(tmp_path, remove_extra_whitespaces=False)
    tokenizer = AlbertTokenizer(proto=proto)
    texts = ["the  quick   fox", "  leading and trailing  ", "a\u00a0\u00a0b", "x"]
    expected = AlbertTextClassifierPreprocessor(tokenizer, SEQUENCE_LENGTH)(
        tf.constant(texts)
    )
    _assert_tokenizer_build_gives(tokenizer, texts, expected)


def _assert_tokenizer_build_gives(tokenizer, texts, expected, runner=None):
    """The tokenizer-only TFLite build of `tokenizer` (or `runner`, one
    already built) packs `texts` into the `expected` (Keras preprocessor's) ids."""
    if runner is None:
        runner = tflite.TFLiteClassifier(
            tflite.convert_tokenizer(tokenizer, SEQUENCE_LENGTH)
        ).runner
    got = runner(text=np.array(texts, dtype=object))
    for key in converter.ID_INPUTS:
        np.testing.assert_array_equal(got[key], expected[key].numpy(), err_msg=key)


def _with_digit_comma_pieces(proto):
    """`proto` plus pieces that the digit-comma rule rewrites (the tiny
    vocabulary has none, so its builds skip the rule)."""
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    for piece in ("\u25819,", "000,", "2,"):
        model.pieces.add(piece=piece, score=0.0)
    return model.SerializeToString()


def test_text_build_cuts_texts_before_the_digit_comma_rule(tiny_proto):
    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    from albert_tf.tflite.tflite_text_packer import digit_comma_table

    tokenizer = AlbertTokenizer(proto=_with_digit_comma_pieces(tiny_proto))
    assert digit_comma_table(tokenizer)[0].size == 3  # The rule runs.
    content = tflite.convert_tokenizer(tokenizer, SEQUENCE_LENGTH)
    with warnings.catch_warnings():  # "intended for debugging purposes only".
        warnings.filterwarnings("ignore", message=".*preserve_all_tensors")
        interpreter = InterpreterWithCustomOps(
            custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS,
            model_content=content,
            experimental_preserve_all_tensors=True,
        )
    runner = interpreter.get_signature_runner()
    # Rewritten pieces before, across and after the cut: Keras's ids.
    texts = ["the " * k + "92000, 9, 1,000 9, 9," for k in range(8)] + ["9, " * 20]
    expected = AlbertTextClassifierPreprocessor(tokenizer, SEQUENCE_LENGTH)(
        tf.constant(texts)
    )
    _assert_tokenizer_build_gives(tokenizer, texts, expected, runner)

    # 300k words: no tensor holds more than an int32 per piece (the rule
    # compared every piece with every rewritten id, 705 bytes per piece with
    # ALBERT's vocabulary, before the texts were cut).
    long_text = "the quick brown fox 9, " * 60_000
    pieces = tokenizer([long_text]).row_lengths()[0].numpy()
    runner(text=np.array([long_text], dtype=object))
    largest = 0
    for detail in interpreter.get_tensor_details():
        try:
            largest = max(largest, interpreter.get_tensor(detail["index"]).nbytes)
        except ValueError:  # No data (a tensor that was never allocated).
            continue
    assert 0 < largest <= 4 * (pieces + 1), (largest, pieces)


def test_folding_the_preprocessing_prints_no_native_info_lines(tiny_proto, tmp_path):
    # SentencePiece's normaliser builder logs "Loading CharsMap" and more.
    # A fresh process: a trainer run with minloglevel=2 silences it for good.
    proto = tmp_path / "spiece.model"
    proto.write_bytes(tiny_proto)
    code = (
        "import sys\n"
        "from albert_tf.tflite.tflite_text_packer import fuse_albert_preprocessing\n"
        "fuse_albert_preprocessing(open(sys.argv[1], 'rb').read())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(proto)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert not re.search(r"^I\d{4} ", done.stderr, flags=re.MULTILINE), done.stderr


def _masked_attention_function():
    """QK^T -> transpose -> mask select -> softmax: the op layout a trained
    model's attention took in the converter (the transpose next to the select
    is where the mask fill value leaked into an int8 range)."""
    weights = tf.constant(np.random.default_rng(0).normal(size=(8, 8)), tf.float32)

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, 6, 8], tf.float32, name="x"),
            tf.TensorSpec([1, 6], tf.int32, name="mask"),
        ]
    )
    def attend(x, mask):
        query = tf.reshape(tf.nn.relu(tf.matmul(x, weights)), [1, 6, 2, 4])
        key = tf.reshape(tf.matmul(x, weights * 0.5), [1, 6, 2, 4])
        scores = tf.transpose(tf.einsum("bthd,bshd->bhts", query, key), [0, 2, 1, 3])
        scores = tf.where(tf.cast(mask[:, None, None, :], tf.bool), scores, -1e9)
        probs = tf.transpose(tf.nn.softmax(scores), [0, 2, 1, 3])
        value = tf.reshape(x, [1, 6, 2, 4])
        return {"out": tf.einsum("bhts,bshd->bthd", probs, value)}

    return attend


def _padded_samples(count):
    rng = np.random.default_rng(1)
    for i in range(count):
        mask = np.zeros((1, 6), np.int32)
        mask[0, : 2 + i % 4] = 1  # Padding in every sample, as short texts have.
        yield {"x": rng.normal(size=(1, 6, 8)).astype(np.float32), "mask": mask}


def test_verify_gates(classifier):
    model = tflite.TFLiteClassifier(tflite.convert(classifier, input_kind="text"))
    texts = TINY_CORPUS
    keras_logits = classifier.predict(texts, verbose=0)
    predicted = keras_logits.argmax(-1)
    assert 0 < predicted.mean() < 1  # Both classes occur.

    exact = tflite.verify(
        classifier, model, texts, predicted, quantized=False, min_agreement=1.0
    )
    assert exact.passed and exact.max_abs_logit_diff < 1e-4

    # A float32 build is held to 1e-4; quantized builds only to their gates.
    nudged = keras_logits + 1e-3
    assert not tflite.verify(
        classifier, model, texts, quantized=False, reference_logits=nudged
    ).passed
    assert tflite.verify(classifier, model, texts, reference_logits=nudged).passed

    # References that predict the other class: TFLite is now the more accurate
    # one, which a 0-point drop gate accepts, and agreement is 0%.
    flipped = -keras_logits
    better = tflite.verify(
        classifier,
        model,
        texts,
        predicted,
        max_accuracy_drop=0.0,
        reference_logits=flipped,
    )
    assert (better.keras_accuracy, better.tflite_accuracy) == (0.0, 1.0)
    assert better.passed
    # Label names count as their ids (they used to score 0% and pass).
    names = [classifier.label_names[i] for i in predicted]
    assert tflite.verify(classifier, model, texts, names).tflite_accuracy == 1.0
    # A column vector of ids too (it broadcast to an n x n comparison).
    column = tflite.verify(classifier, model, texts, predicted[:, None])
    assert column.tflite_accuracy == 1.0
    with pytest.raises(ValueError, match="'neutral' .entry 0. is not one of"):
        tflite.verify(classifier, model, texts, ["neutral"] + names[1:])
    worse = tflite.verify(
        classifier,
        model,
        texts,
        1 - predicted,
        max_accuracy_drop=99.0,
        min_agreement=0.5,
        reference_logits=flipped,
    )
    assert worse.failures == [
        "accuracy dropped 100.00 points > 99.0 allowed",
        "agreement 0.00% < 50.00% required",
    ]


def test_int8_keeps_the_attention_mask_fill_out_of_integer_ranges(monkeypatch):
    def configure(c):
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = lambda: _padded_samples(20)
        c._experimental_calibrate_only = True
        c.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]

    attend = _masked_attention_function()
    content = converter._convert_function(attend, [], configure, "attention")
    runner = tflite.TFLiteClassifier(content).runner
    for sample in _padded_samples(5):
        expected = attend(**sample)["out"].numpy()
        got = runner(**sample)["out"]
        # Leaked: every real score rounds to 0, attention goes uniform.
        np.testing.assert_allclose(got, expected, atol=0.1 * np.abs(expected).max())

    # Without TRANSPOSE in float the fill value leaks; the build is refused.
    monkeypatch.setattr(
        converter,
        "INT8_FLOAT_OPS",
        tuple(op for op in converter.INT8_FLOAT_OPS if op != "TRANSPOSE"),
    )
    with pytest.raises(ValueError, match="mask fill value"):
        converter._convert_function(attend, [], configure, "attention")


def test_quantization_config_is_frozen_and_checked():
    with pytest.raises(ValueError, match="representative texts"):
        tflite.int8([])
    with pytest.raises(ValueError, match="Unknown quantization mode 'int4'"):
        tflite.QuantizationConfig("int4")
    config = tflite.int8(["a", "b"])
    assert config.representative_texts == ("a", "b")
    with pytest.raises(AttributeError):
        config.mode = "none"


@pytest.mark.slow
def test_cli_builds_verifies_and_gates(classifier, tmp_path, capsys, monkeypatch):
    from albert_tf.cli import main

    model_path = tmp_path / "model.keras"
    classifier.save(model_path)
    data = tmp_path / "dev.tsv"
    data.write_text(
        "sentence\tlabel\n"
        + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(TINY_CORPUS))
    )
    # The user's own file: CSV, other columns, labels by name.
    names = ["negative", "positive"]
    own = tmp_path / "own.csv"
    own.write_text(
        "id,review,sentiment\n"
        + "".join(f'{i},"{t}",{names[i % 2]}\n' for i, t in enumerate(TINY_CORPUS))
    )
    out = tmp_path / "model.tflite"
    code = main(
        [
            "tflite",
            str(model_path),
            str(out),
            "--quantize",
            "dynamic",
            "--verify",
            str(own),
            "--text-column",
            "review",
            "--label-column",
            "sentiment",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    expected = np.mean(
        classifier.predict(TINY_CORPUS, verbose=0).argmax(-1)
        == np.arange(len(TINY_CORPUS)) % 2
    )
    assert f"(float model {100 * expected:.2f}%)" in printed, printed
    # Bad --verify data is named by file and line, and nothing is written.
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood\t1\nno label here\n")
    args = ["tflite", str(model_path), str(tmp_path / "v.tflite"), "--verify"]
    assert main([*args, str(bad)]) == 1
    assert "bad.tsv:line 3: expected 2 columns" in capsys.readouterr().err
    # A pair column would be dropped silently: the build takes single texts.
    assert (
        main(
            [
                *args,
                str(own),
                "--text-column",
                "review",
                "--text-pair-column",
                "id",
                "--label-column",
                "sentiment",
            ]
        )
        == 1
    )
    assert "drop --text-pair-column" in capsys.readouterr().err
    assert not (tmp_path / "v.tflite").exists()
    metadata = json.loads((tmp_path / "model.json").read_text())
    assert metadata["quantization"] == "dynamic"
    assert metadata["inputs"] == [
        {
            "name": "text",
            "dtype": "string",
            "shape": [-1],
            "position": 0,
            "tensor": "serving_default_text:0",
        }
    ]
    assert metadata["verification"]["examples"] == len(TINY_CORPUS)
    assert metadata["min_runtime_version"]
    assert metadata["required_custom_ops"] == ["TFText>FastSentencepieceTokenize"]
    assert metadata["sequence_length"] == SEQUENCE_LENGTH
    assert (tmp_path / "model.labels.txt").read_text().split() == [
        "negative",
        "positive",
    ]
    assert out.read_bytes()[4:8] == b"TFL3"

    # A build whose predictions collapse, as users report after quantizing
    # (here every class flipped): the agreement gate fails, nothing is written.
    # Calibration texts need no labels.
    from albert_tf.tflite.tflite_classifier import TFLiteClassifier

    predict = TFLiteClassifier.predict

    def collapsed(self, *args, **kwargs):
        outputs = predict(self, *args, **kwargs)
        outputs["logits"] = outputs["logits"][:, ::-1]
        return outputs

    monkeypatch.setattr(TFLiteClassifier, "predict", collapsed)
    unlabelled = tmp_path / "unlabelled.tsv"
    unlabelled.write_text("sentence\n" + "".join(f"{t}\n" for t in TINY_CORPUS))
    gated = tmp_path / "gated.tflite"
    code = main(
        [
            "tflite",
            str(model_path),
            str(gated),
            "--input",
            "ids",
            "--quantize",
            "int8",
            "--calibration-data",
            str(unlabelled),
            "--verify",
            str(data),
            "--min-agreement",
            "0.9",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "verification failed" in err and "agreement 0.00% < 90.00% required" in err
    assert not gated.exists()


def test_cli_report_compares_every_mode_on_the_verify_data(
    classifier, tmp_path, capsys, caplog
):
    from albert_tf.cli import main

    model_path = tmp_path / "model.keras"
    classifier.save(model_path)
    data = tmp_path / "dev.tsv"
    labels = np.arange(len(TINY_CORPUS)) % 2
    data.write_text(
        "sentence\tlabel\n"
        + "".join(f"{t}\t{y}\n" for t, y in zip(TINY_CORPUS, labels, strict=True))
    )
    out, report = tmp_path / "model.tflite", tmp_path / "report.md"
    args = ["tflite", str(model_path), str(out), "--quantize", "dynamic"]
    assert main([*args, "--report", str(report)]) == 1
    assert "--report needs --verify" in capsys.readouterr().err
    assert not out.exists() and not report.exists()

    caplog.clear()
    with caplog.at_level("INFO", logger="albert_tf"):
        args += ["--sequence-length", "12", "--verify", str(data)]
        assert main([*args, "--report", str(report)]) == 0
    # One build per mode, all at the length asked for: the written dynamic
    # build is reused, not built again.
    converted = [m for m in caplog.messages if m.startswith("Converted the")]
    assert len(converted) == 4 and all("(length 12)" in m for m in converted)
    table = report.read_text()
    assert table in capsys.readouterr().out
    rows = {
        cells[0]: cells
        for line in table.splitlines()[2:]
        if line.startswith("| ")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert list(rows) == ["none", "float16", "dynamic", "int8"]
    keras_accuracy = np.mean(
        classifier.predict(TINY_CORPUS, verbose=0).argmax(-1) == labels
    )
    # The float build is the reference: same size, same answers as Keras.
    assert rows["none"][2] == "1.00x" and rows["none"][6] == "100.00%"
    assert rows["none"][7] == f"{100 * keras_accuracy:.2f}%"
    assert f"Float model accuracy: {100 * keras_accuracy:.2f}%." in table
    # Its dynamic row measures the file this command wrote.
    assert rows["dynamic"][1] == f"{out.stat().st_size / 2**20:.2f}"


def test_cli_bad_inputs_are_clear(tmp_path, capsys):
    from albert_tf.cli import main

    saved_model = tmp_path / "export"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"")
    assert main(["tflite", str(saved_model), str(tmp_path / "x.tflite")]) == 1
    assert "records no sequence length" in capsys.readouterr().err
    version = tmp_path / "base" / "3"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    # An export base (as `serve` and `inspect` take) means its newest version.
    assert main(["tflite", str(version.parent), str(tmp_path / "x.tflite")]) == 1
    assert f"{version} records no sequence length" in capsys.readouterr().err
    assert (
        main(["tflite", str(tmp_path / "missing.keras"), str(tmp_path / "x.tflite")])
        == 1
    )
    assert "not found" in capsys.readouterr().err
    # An unwritable target fails before the conversion, and nothing is written.
    folder = tmp_path / "out.tflite"
    folder.mkdir()
    args = ["tflite", str(saved_model), str(folder), "--sequence-length", "8"]
    assert main(args) == 1
    assert f"Cannot write '{folder}': it is a directory" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["base", "export", "out.tflite"]
    (tmp_path / "ids.spm").mkdir()  # Ids builds also write the vocabulary.
    args = ["tflite", str(saved_model), str(tmp_path / "ids.tflite"), "--input", "ids"]
    assert main([*args, "--sequence-length", "8"]) == 1
    assert "ids.spm': it is a directory" in capsys.readouterr().err
    assert not (tmp_path / "ids.tflite").exists()

    # Options the build would ignore are refused, before anything is loaded.
    args = ["tflite", str(tmp_path / "m.keras"), str(tmp_path / "m.tflite")]
    for given, needs in (
        (["--min-agreement", "0.99"], "--min-agreement needs --verify DATA"),
        (["--max-accuracy-drop", "0"], "--max-accuracy-drop needs --verify DATA"),
        (["--calibration-data", "c.tsv"], "--calibration-data needs --quantize int8"),
        (["--calibration-size", "5"], "--calibration-size needs --quantize int8"),
    ):
        assert main([*args, "--quantize", "dynamic", *given]) == 1
        assert needs in capsys.readouterr().err

    # An output named like a sidecar would overwrite it (or be overwritten).
    sidecars = tmp_path / "col"
    sidecars.mkdir()
    (sidecars / "m.json").write_text("{}")
    report = ["--verify", "d.tsv", "--report", str(sidecars / "m.json")]
    for output, extra, twice in (
        (
            "m.json",
            [],
            "m.json' would be written twice, as the .tflite file and as its metadata",
        ),
        (
            "m.spm",
            [],
            "m.spm' would be written twice, as the .tflite file and as "
            "its SentencePiece model",
        ),
        (
            "m.tflite",
            report,
            "m.json' would be written twice, as its metadata and as --report",
        ),
    ):
        out = str(sidecars / output)
        assert main(["tflite", str(saved_model), out, "--input", "ids", *extra]) == 1
        assert f"'{sidecars}/{twice}" in capsys.readouterr().err
    assert sorted(os.listdir(sidecars)) == ["m.json"]
    assert (sidecars / "m.json").read_text() == "{}"
    model = tmp_path / "m.keras"
    assert main(["tflite", str(model), str(model)]) == 1
    message = f"the model '{model}' would be overwritten by the .tflite file"
    assert message in capsys.readouterr().err


def test_ids_build_ships_its_vocabulary_and_tensor_positions(classifier, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    path = tmp_path / "ids.tflite"
    metadata = tflite.build_tflite(classifier, str(path), input_kind="ids")
    # The app tokenizes with this SentencePiece model (the Keras one's bytes).
    assert (
        tmp_path / "ids.spm"
    ).read_bytes() == classifier.preprocessor.tokenizer.proto
    assert metadata["vocabulary_file"] == "ids.spm"
    tokenizer = classifier.preprocessor.tokenizer
    assert metadata["special_token_ids"]["unk"] == tokenizer.unk_token_id
    assert metadata["digit_comma_rule"] is True
    assert metadata["verification"] is None  # Not gated: said so.
    # Apps that feed tensors by position need the file's order, not ours.
    interpreter = Interpreter(model_path=str(path))
    details = interpreter.get_signature_runner().get_input_details()
    order = [d["index"] for d in interpreter.get_input_details()]
    for entry in metadata["inputs"]:
        assert order.index(details[entry["name"]]["index"]) == entry["position"]
        # Java's getInputIndex(name) takes the tensor's own name.
        tensor = interpreter.get_input_details()[entry["position"]]["name"]
        assert tensor == entry["tensor"]
    assert sorted(e["position"] for e in metadata["inputs"]) == [0, 1, 2]
    outputs = interpreter.get_output_details()
    for entry in metadata["outputs"]:
        assert outputs[entry["position"]]["name"] == entry["tensor"]
    assert len({e["tensor"] for e in metadata["outputs"]}) == 2
    with pytest.raises(ValueError, match="longer than the model's max_sequence"):
        tflite.convert(classifier, input_kind="ids", sequence_length=10_000)
    # Named like its own vocabulary: refused before converting.
    with pytest.raises(ValueError, match="written twice"):
        tflite.build_tflite(classifier, str(tmp_path / "v.spm"), input_kind="ids")
