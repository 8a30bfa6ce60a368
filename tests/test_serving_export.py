"""String-in SavedModel export: loads like TF Serving loads it, equals Keras."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from albert_tf.models import load_classifier
from albert_tf.serving import export_classifier
from albert_tf.serving import preflight
from albert_tf.serving import signatures as sig
from albert_tf.serving.warmup import MAX_WARMUP_RECORDS
from albert_tf.serving.warmup import read_warmup_file
from albert_tf.training import predict
from tests.helpers import dead_writers_temp_folder
from tests.serving_models import LABEL_NAMES
from tests.serving_models import PAIRS
from tests.serving_models import TEXTS
from tests.serving_models import tiny_classifier

pytestmark = pytest.mark.slow

# Runs in a fresh interpreter that imports only tensorflow and tensorflow_text,
# as a model server would: TF2 loader, then the TF1 session loader (graph and
# signatures only, like the C++ server).
LOAD_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401
path, texts, pairs, ids = sys.argv[1], *json.loads(sys.argv[2])
def plain(outputs):
    def one(v):
        v = np.asarray(v)
        return [x.decode() for x in v.ravel()] if v.dtype == object else v.tolist()
    return {k: one(v) for k, v in outputs.items()}
def feature(text):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))
# The last example has no `text_pair`: one batch of pairs and a single text.
examples = [tf.train.Example(features=tf.train.Features(feature={
    "text": feature(a), **({"text_pair": feature(b)} if b else {}),
})).SerializeToString() for a, b in zip(texts, [*pairs[:-1], None], strict=True)]
model = tf.saved_model.load(path)
s = model.signatures
result = {"tf2": {
    "single": plain(s["serving_default"](text=tf.constant(texts))),
    "pair": plain(
        s["predict_pair"](text_a=tf.constant(texts), text_b=tf.constant(pairs))
    ),
    "classify": plain(s["classify"](inputs=tf.constant(examples))),
    "ids": plain(
        s["predict_ids"](**{k: tf.constant(v, tf.int32) for k, v in ids.items()})
    ),
}}
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    def run(name, feeds):
        d = meta.signature_def[name]
        out = session.run({k: v.name for k, v in d.outputs.items()},
                          {d.inputs[k].name: v for k, v in feeds.items()})
        return plain(out)
    result["tf1"] = {
        "single": run("serving_default", {"text": texts}),
        "pair": run("predict_pair", {"text_a": texts, "text_b": pairs}),
        "classify": run("classify", {"inputs": examples}),
        "classify_method": meta.signature_def["classify"].method_name,
    }
try:
    s["serving_default"](text=tf.constant([b"fine", b"caf\xe9"]))
    result["invalid_utf8"] = "accepted"
except tf.errors.InvalidArgumentError as e:
    result["invalid_utf8"] = e.message
result["albert_tf_imported"] = any(m.startswith("albert_tf") for m in sys.modules)
print("RESULT" + json.dumps(result))
"""


@pytest.fixture(scope="module")
def classifier(tiny_proto):
    return tiny_classifier(tiny_proto)


@pytest.fixture(scope="module")
def export_base(classifier, tmp_path_factory):
    base = tmp_path_factory.mktemp("export") / "albert"
    export_classifier(classifier, base)
    return base


def test_export_layout(export_base):
    assert sorted(os.listdir(export_base)) == [
        "1",
        sig.BATCHING_FILE,
        sig.MODELS_CONFIG_FILE,
    ]
    version = export_base / "1"
    labels = (version / "assets.extra" / sig.LABELS_FILE).read_text().split()
    assert labels == LABEL_NAMES
    config = (export_base / sig.MODELS_CONFIG_FILE).read_text()
    assert 'name: "albert"' in config and 'base_path: "/models/albert"' in config
    assert (
        "max_batch_size { value: 32 }" in (export_base / sig.BATCHING_FILE).read_text()
    )
    # Loading an export as a model points back to the .keras file.
    with pytest.raises(FileNotFoundError, match="holds SavedModel version folders"):
        load_classifier(str(export_base))
    with pytest.raises(FileNotFoundError, match="It is a SavedModel"):
        load_classifier(str(version))


def test_deployment_files_read_what_export_writes(export_base):
    """docker-compose and k8s point TF Serving at the export's own files."""
    import yaml

    serving = pathlib.Path(__file__).resolve().parents[1] / "serving"
    compose = yaml.safe_load((serving / "docker-compose.yml").read_text())
    service = compose["services"]["albert"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in service["volumes"])
    assert mounts == {"../export/albert": "/models/albert"}
    flags = dict(arg.split("=", 1) for arg in service["command"])
    for flag in ("--model_config_file", "--batching_parameters_file"):
        # The container path maps back into the export base.
        name = pathlib.PurePosixPath(flags[flag]).relative_to("/models/albert")
        assert (export_base / name).is_file(), flag
    # TF Serving pads with each tensor's first element: never for our ids.
    batching = (export_base / sig.BATCHING_FILE).read_text()
    assert "pad_variable_length_inputs: false" in batching
    k8s = list(
        yaml.safe_load_all((serving / "k8s" / "albert-serving.yaml").read_text())
    )
    container = k8s[0]["spec"]["template"]["spec"]["containers"][0]
    args = dict(arg.split("=", 1) for arg in container["args"])
    files = {pathlib.PurePosixPath(args[f]).name for f in flags if f.endswith("_file")}
    assert files == {sig.MODELS_CONFIG_FILE, sig.BATCHING_FILE}
    assert container["readinessProbe"]["httpGet"]["path"].endswith("/metadata")


def test_fresh_process_and_tf1_loader_match_keras(classifier, export_base):
    features = classifier.preprocessor(tf.constant(TEXTS[:2]))
    ids = {k: np.asarray(v).tolist() for k, v in features.items()}
    env = dict(os.environ, PYTHONPATH="")  # Nothing of albert_tf importable.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_SCRIPT,
            str(export_base / "1"),
            json.dumps([TEXTS, PAIRS, ids]),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["albert_tf_imported"] is False

    single = classifier.predict(TEXTS, verbose=0)
    pair = classifier.predict((TEXTS, PAIRS), verbose=0)
    # Texts get different logits, so a swapped or dropped text shows.
    assert np.ptp(single, axis=0).max() > 0.1 and np.abs(single - pair).max() > 0.1
    by_ids = classifier.predict_on_batch(TEXTS[:2])
    softmax = lambda x: tf.nn.softmax(x).numpy()  # noqa: E731
    for loader in ("tf2", "tf1"):
        got = result[loader]
        for key, expected in (("single", single), ("pair", pair)):
            logits = np.array(got[key][sig.LOGITS])
            np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=0)
            np.testing.assert_allclose(
                got[key][sig.PROBABILITIES], softmax(expected), atol=1e-5, rtol=0
            )
            assert got[key][sig.CLASS_ID] == expected.argmax(-1).tolist()
            assert got[key][sig.LABEL] == [LABEL_NAMES[i] for i in expected.argmax(-1)]
        # Each example as what it carries: pairs, and the last a single text.
        np.testing.assert_allclose(
            got["classify"][sig.SCORES],
            softmax(np.concatenate([pair[:-1], single[-1:]])),
            atol=1e-5,
            rtol=0,
        )
        assert got["classify"][sig.CLASSES] == LABEL_NAMES * len(TEXTS)
    np.testing.assert_allclose(
        result["tf2"]["ids"][sig.LOGITS], by_ids, atol=1e-5, rtol=0
    )
    assert result["tf1"]["classify_method"] == sig.CLASSIFY_METHOD
    # The tokenizer would replace invalid bytes; the serving graph rejects them.
    assert "invalid UTF-8 at rows" in result["invalid_utf8"]


def test_softmax_classifier_exports_its_probabilities(tiny_proto, tmp_path):
    classifier = tiny_classifier(tiny_proto, activation="softmax")
    path = export_classifier(classifier, tmp_path / "albert", run_preflight=False)
    outputs = tf.saved_model.load(path).signatures[sig.PREDICT](
        **{sig.TEXT: tf.constant(TEXTS)}
    )
    expected = classifier.predict(TEXTS, verbose=0)  # Already probabilities.
    # Logits are log-probabilities, as TFLite builds and `predict()` give them.
    np.testing.assert_allclose(outputs[sig.LOGITS], np.log(expected), atol=1e-5)
    local = predict(classifier, TEXTS)
    for key in (sig.LOGITS, sig.PROBABILITIES):
        np.testing.assert_allclose(local[key], outputs[key], atol=1e-5)
    np.testing.assert_allclose(outputs[sig.PROBABILITIES], expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs[sig.PROBABILITIES].numpy().sum(-1), 1.0, 1e-5)
    # A probability that underflows to 0 gives a floored logit, not -inf
    # (which JSON cannot hold).
    classifier.output_dense.kernel.assign(classifier.output_dense.kernel * 1e4)
    assert (classifier.predict(TEXTS, verbose=0) == 0).any()
    path = export_classifier(classifier, tmp_path / "floored", run_preflight=False)
    served = (
        tf.saved_model.load(path)
        .signatures[sig.PREDICT](**{sig.TEXT: tf.constant(TEXTS)})[sig.LOGITS]
        .numpy()
    )
    local = predict(classifier, TEXTS)["logits"]
    assert np.isfinite(served).all() and np.isfinite(local).all()
    np.testing.assert_allclose(local, served, atol=1e-4)


def test_empty_batches_get_empty_outputs(export_base):
    served = tf.saved_model.load(str(export_base / "1"))
    empty = tf.constant([], tf.string)
    single = served.signatures[sig.PREDICT](**{sig.TEXT: empty})
    pair = served.signatures[sig.PREDICT_PAIR](**{sig.TEXT_A: empty, sig.TEXT_B: empty})
    for outputs in (single, pair):
        assert outputs[sig.LOGITS].shape == (0, len(LABEL_NAMES))
        assert outputs[sig.LABEL].shape == (0,)
    classify = served.signatures[sig.CLASSIFY](**{sig.CLASSIFY_INPUTS: empty})
    assert classify[sig.SCORES].shape == (0, len(LABEL_NAMES))


def test_pairs_of_unequal_length_are_refused_naming_the_inputs(export_base):
    served = tf.saved_model.load(str(export_base / "1")).signatures[sig.PREDICT_PAIR]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        served(**{sig.TEXT_A: tf.constant(["a", "b"]), sig.TEXT_B: tf.constant(["c"])})
    # The signature's message, not the packer's ("All segments need...").
    assert "and \\'text_b\\' must have the same length" in error.value.message


def test_preflight_lists_signatures_and_tf_text_ops(export_base):
    report = preflight(export_base / "1")
    signatures = {s.name: s for s in report.signatures}
    assert set(signatures) == set(sig.SIGNATURES)
    assert signatures[sig.CLASSIFY].method_name == sig.CLASSIFY_METHOD
    assert signatures[sig.PREDICT].inputs == {sig.TEXT: ("string", "[batch]")}
    outputs = signatures[sig.PREDICT].outputs
    assert outputs[sig.LOGITS] == ("float32", "[batch, 3]")
    assert outputs[sig.CLASS_ID] == ("int64", "[batch]")
    assert outputs[sig.LABEL] == ("string", "[batch]")
    assert signatures[sig.CLASSIFY].outputs[sig.CLASSES][0] == "string"
    # The ops a model server must link from tensorflow-text, and only those.
    # The tokenizer's ops alone, all in tensorflow-text for years; packing is
    # core ops (tf-text's trimmer ops broke older TF Serving images).
    assert report.non_core_ops == [
        "NormalizeUTF8",
        "SentencepieceOp",
        "SentencepieceTokenizeOp",
    ]
    assert not any(
        op in report.non_core_ops for op in ("MatMul", "Softmax", "ParseExampleV2")
    )
    assert report.forbidden_ops == []


def test_preflight_rejects_python_ops(tmp_path):
    module = tf.Module()
    module.f = tf.function(
        lambda x: tf.py_function(lambda v: v * 2, [x], tf.float32),
        input_signature=[tf.TensorSpec([None], tf.float32)],
    )
    tf.saved_model.save(
        module, str(tmp_path), signatures=module.f.get_concrete_function()
    )
    with pytest.raises(ValueError, match="EagerPyFunc"):
        preflight(tmp_path)


def test_warmup_records_parse_as_prediction_logs(export_base):
    path = export_base / "1" / "assets.extra" / sig.WARMUP_FILE
    logs = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(str(path))
    ]
    kinds = {}
    for log in logs:
        kind = log.WhichOneof("log_type")
        request = getattr(log, kind).request
        kinds[request.model_spec.signature_name] = kind
        assert request.model_spec.name == "albert"
        # One row each: warmup fits any max_batch_size.
        if kind == "classify_log":
            assert len(request.input.example_list.examples) == 1
        else:
            assert {
                tuple(t.tensor_shape.dim)[0].size for t in request.inputs.values()
            } == {1}
    assert kinds == {
        sig.PREDICT: "predict_log",
        sig.PREDICT_PAIR: "predict_log",
        sig.PREDICT_IDS: "predict_log",
        sig.CLASSIFY: "classify_log",
    }


def test_warmup_reader_stops_at_tf_servings_limit(tmp_path):
    path = str(tmp_path / sig.WARMUP_FILE)
    logs = []
    for i in range(MAX_WARMUP_RECORDS + 1):
        log = prediction_log_pb2.PredictionLog()
        log.predict_log.request.model_spec.name = f"m{i}"
        logs.append(log)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    assert list(read_warmup_file(path)) == logs[:MAX_WARMUP_RECORDS] == logs[:1000]


def test_cli_export_next_version_inspect_and_atomic_failure(
    classifier, export_base, tmp_path, capsys, monkeypatch
):
    from albert_tf import cli
    from albert_tf.serving import export as export_module

    model_path = tmp_path / "model.keras"
    classifier.save(model_path)
    assert cli.main(["export", str(model_path), str(export_base)]) == 0
    assert "Exported to" in capsys.readouterr().out
    assert (export_base / "2" / "saved_model.pb").is_file()

    assert cli.main(["inspect", str(export_base)]) == 0  # The latest version.
    out = capsys.readouterr().out
    assert str(export_base / "2") in out and "SentencepieceOp" in out
    assert f"Signature '{sig.CLASSIFY}' ({sig.CLASSIFY_METHOD})" in out
    length = classifier.preprocessor.sequence_length
    assert f"  sequence_length: {length} (pad predict_ids requests to it)" in out
    assert "\n  lowercase: true\n" in out

    assert (
        cli.main(["export", str(model_path), str(export_base), "--version", "2"]) == 1
    )
    assert "already exists" in capsys.readouterr().err
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert cli.main(["export", str(model_path), str(a_file)]) == 1
    assert f"Export base '{a_file}' is a file" in capsys.readouterr().err

    # A failure while writing leaves neither version 3 nor a temp folder.
    def partial_save(obj, path, signatures=None):
        (tmp_path / "seen").write_text(path)
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise OSError("simulated: disk full")

    monkeypatch.setattr(export_module.tf.saved_model, "save", partial_save)
    with pytest.raises(OSError, match="disk full"):
        export_classifier(classifier, export_base)
    assert os.path.dirname((tmp_path / "seen").read_text()) == str(export_base)
    assert sorted(os.listdir(export_base)) == [
        "1",
        "2",
        sig.BATCHING_FILE,
        sig.MODELS_CONFIG_FILE,
    ]
    monkeypatch.undo()

    # Another export takes version 3 while this one writes: this one is 4.
    save = export_module.tf.saved_model.save

    def racing_save(obj, path, signatures=None):
        save(obj, path, signatures=signatures)
        shutil.copytree(export_base / "2", export_base / "3")

    monkeypatch.setattr(export_module.tf.saved_model, "save", racing_save)
    assert export_classifier(classifier, export_base) == str(export_base / "4")
    monkeypatch.undo()
    # A version asked for is not moved: that is an error.
    with pytest.raises(FileExistsError, match="Version folder already exists"):
        export_classifier(classifier, export_base, version=3)
    (export_base / "5").write_text("")  # A plain file takes the next number.
    assert export_classifier(classifier, export_base) == str(export_base / "6")

    def racing_save_to_8(obj, path, signatures=None):
        save(obj, path, signatures=signatures)
        shutil.copytree(export_base / "2", export_base / "8")

    monkeypatch.setattr(export_module.tf.saved_model, "save", racing_save_to_8)
    with pytest.raises(OSError):  # Taken meanwhile, and asked for: not moved.
        export_classifier(classifier, export_base, version=8)
    assert not (export_base / "9").exists()
    assert (export_base / "4" / "assets.extra" / sig.WARMUP_FILE).is_file()
    assert not [name for name in os.listdir(export_base) if name.startswith(".tmp")]
    monkeypatch.undo()

    # Killed at the version's rename: its server files are already there.
    def killed(src, dst):
        raise KeyboardInterrupt

    fresh = tmp_path / "fresh"
    monkeypatch.setattr(export_module.os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        export_classifier(classifier, fresh)
    assert sorted(os.listdir(fresh)) == [sig.BATCHING_FILE, sig.MODELS_CONFIG_FILE]


def test_export_removes_what_killed_exports_left(classifier, tmp_path):
    from albert_tf.serving.batcher import BatchingParameters

    base = tmp_path / "albert"
    base.mkdir()
    dead = dead_writers_temp_folder(base, "1")
    # The smallest batching values are allowed (one row, no waiting).
    limits = {"max_batch_size": 1, "batch_timeout_micros": 0}
    export_classifier(classifier, base, run_preflight=False, **limits)
    assert not os.path.exists(dead)
    assert sorted(os.listdir(base)) == ["1", sig.BATCHING_FILE, sig.MODELS_CONFIG_FILE]
    params = BatchingParameters.from_file(base / sig.BATCHING_FILE)
    assert (params.max_batch_size, params.batch_timeout_micros) == (1, 0)
    # Its warmup requests fit batches of one row, so the version loads.
    from albert_tf.serving.dev_server import DevServer

    with DevServer("albert", base, port=0, batching=params, enable_batching=True):
        pass


def test_reexport_keeps_edited_server_files(tmp_path, caplog):
    from albert_tf.serving.batcher import BatchingParameters
    from albert_tf.serving.export import _write_server_files

    defaults = {"max_batch_size": None, "batch_timeout_micros": None}
    _write_server_files(tmp_path, "albert", defaults)
    config = tmp_path / sig.MODELS_CONFIG_FILE
    batching = tmp_path / sig.BATCHING_FILE
    assert BatchingParameters.from_file(batching).max_batch_size == 32

    edited_config = config.read_text().replace("num_versions: 1", "num_versions: 2")
    config.write_text(edited_config)
    batching.write_text(
        batching.read_text().replace("value: 32", "value: 8")
        + "allowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"
    )
    edited_batching = batching.read_text()
    with caplog.at_level("WARNING", logger="albert_tf"):
        _write_server_files(tmp_path, "albert", defaults)
    assert config.read_text() == edited_config
    assert batching.read_text() == edited_batching
    assert f"Kept the existing {config}, which differs" in caplog.text
    # The folder mounted at /models/albert must be named so.
    assert f"mount {tmp_path} there" in caplog.text
    # Another model name: clients would get NOT_FOUND, so the warning says so.
    caplog.clear()
    with caplog.at_level("WARNING", logger="albert_tf"):
        _write_server_files(tmp_path, "sentiment", defaults)
    assert config.read_text() == edited_config
    assert "does not name the model 'sentiment'" in caplog.text

    # Fields passed explicitly are set in place; the other lines stay.
    _write_server_files(
        tmp_path, "albert", {"max_batch_size": 16, "batch_timeout_micros": None}
    )
    params = BatchingParameters.from_file(batching)
    assert (params.max_batch_size, params.batch_timeout_micros) == (16, 2000)
    assert batching.read_text() == edited_batching.replace("value: 8", "value: 16")


def test_batching_parameters_name_the_line_of_a_bad_value(tmp_path):
    from albert_tf.serving.batcher import BatchingParameters

    path = tmp_path / "batching.txt"
    path.write_text("batch_timeout_micros { value: 0 }\nmax_batch_size { value: 0 }\n")
    with pytest.raises(ValueError, match=r"batching.txt:2: max_batch_size must be 1"):
        BatchingParameters.from_file(path)
    path.write_text("batch_timeout_micros { value: -1 }\n")
    with pytest.raises(
        ValueError, match=r"batching.txt:1: batch_timeout_micros must be 0 or more"
    ):
        BatchingParameters.from_file(path)
    path.write_text(
        "batch_timeout_micros { value: 0 }\nnum_batch_threads { value: x }\n"
    )
    with pytest.raises(ValueError, match=r"batching.txt:2:\d+ : .*integer: x"):
        BatchingParameters.from_file(path)
    path.write_text("batch_timeout_micros { value: 0 }\n")  # No waiting: allowed.
    assert BatchingParameters.from_file(path).batch_timeout_micros == 0


@pytest.mark.parametrize(
    "text",
    [
        "max_batch_size { value: 8 }",
        "max_batch_size: { value: 8 }  # tuned",
        "max_batch_size{value:8}",
        "max_batch_size\t{ value: 8 }",
        "max_batch_size {\n  value: 8\n}",
        "max_batch_size { value: 8 } batch_timeout_micros { value: 0 }",
    ],
)
def test_batching_parameters_read_every_text_proto_form(tmp_path, text):
    from albert_tf.serving.batcher import BatchingParameters

    path = tmp_path / "batching.txt"
    path.write_text(text + "\npad_variable_length_inputs: false\n")
    assert BatchingParameters.from_file(path).max_batch_size == 8


def test_batching_parameters_refuse_what_tf_serving_refuses(tmp_path, caplog):
    from albert_tf.serving.batcher import BatchingParameters

    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 32 }\nmax_batch_size { value: 8 }\n")
    with pytest.raises(ValueError, match='batching.txt:2:.*multiple "max_batch_size"'):
        BatchingParameters.from_file(path)
    # A field this does not know (a newer one, or a typo) is skipped, saying so.
    path.write_text("max_batch_sise { value: 8 }\n")
    with caplog.at_level("WARNING", logger="albert_tf"):
        assert BatchingParameters.from_file(path).max_batch_size == 32
    assert "does not know the batching field 'max_batch_sise'" in caplog.text


@pytest.mark.parametrize(
    "line",
    [
        "max_batch_size { value: 32 }  # tuned for p99",
        "max_batch_size: { value: 32 }",
        "  max_batch_size{value:32}",
    ],
)
def test_reexport_sets_a_batching_field_in_place_however_written(tmp_path, line):
    from albert_tf.serving.batcher import BatchingParameters
    from albert_tf.serving.export import _write_server_files

    batching = tmp_path / sig.BATCHING_FILE
    batching.write_text(f"{line}\nbatch_timeout_micros {{ value: 100 }}\n")
    _write_server_files(
        tmp_path, "albert", {"max_batch_size": 8, "batch_timeout_micros": None}
    )
    # Set once, in place (a second field would make TF Serving refuse it).
    params = BatchingParameters.from_file(batching)
    assert (params.max_batch_size, params.batch_timeout_micros) == (8, 100)
    assert batching.read_text().count("max_batch_size") == 1
    assert "# tuned for p99" in batching.read_text() or "#" not in line
    # Where it cannot be set in place, nothing is written and the error says so.
    batching.write_text(
        "max_batch_size { value: 1 } batch_timeout_micros { value: 2 }\n"
    )
    with pytest.raises(ValueError, match="cannot set batch_timeout_micros in place"):
        _write_server_files(
            tmp_path, "albert", {"max_batch_size": None, "batch_timeout_micros": 5}
        )
    assert "value: 2" in batching.read_text()


@pytest.mark.parametrize(
    "option", [{"max_batch_size": 0}, {"batch_timeout_micros": -1}]
)
def test_export_refuses_bad_batching_values_before_loading(tmp_path, option):
    # A path that does not exist: the check comes before the model loads.
    with pytest.raises(ValueError, match=f"`{next(iter(option))}` must be"):
        export_classifier(str(tmp_path / "missing.keras"), tmp_path / "m", **option)
    assert not (tmp_path / "m").exists()


def test_export_needs_a_preprocessor(classifier, tmp_path):
    from albert_tf.models import AlbertTextClassifier

    bare = AlbertTextClassifier(classifier.backbone, num_classes=2)
    with pytest.raises(ValueError, match="no preprocessor"):
        export_classifier(bare, tmp_path / "m")
    assert not (tmp_path / "m" / "1").exists()


def _replay_warmup(version_dir):
    """Runs every warmup record on the export; returns the signature names."""
    loaded = tf.saved_model.load(str(version_dir))
    names = []
    for log in read_warmup_file(str(version_dir / "assets.extra" / sig.WARMUP_FILE)):
        kind = log.WhichOneof("log_type")
        request = getattr(log, kind).request
        name = request.model_spec.signature_name
        if kind == "classify_log":
            examples = request.input.example_list.examples
            inputs = {sig.CLASSIFY_INPUTS: [e.SerializeToString() for e in examples]}
        else:
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        names.append(name)
    return loaded, names


def _examples(texts, pairs):
    def feature(text):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))

    def example(a, b):
        features = {"text": feature(a)}
        if b is not None:
            features["text_pair"] = feature(b)
        return tf.train.Example(features=tf.train.Features(feature=features))

    return tf.constant(
        [example(a, b).SerializeToString() for a, b in zip(texts, pairs, strict=True)]
    )


def test_pair_model_serves_pairs_by_default_and_single_model_no_pairs(
    tiny_proto, tmp_path
):
    from albert_tf.tflite import build_tflite
    from albert_tf.tflite.saved_model_source import SavedModelClassifier

    pair_model = tiny_classifier(tiny_proto)
    pair_model.preprocessor.text_pairs = True
    version = pathlib.Path(export_classifier(pair_model, tmp_path / "pairs"))
    loaded, replayed = _replay_warmup(version)
    assert sorted(set(replayed)) == sorted(sig.SIGNATURES)
    default = loaded.signatures[sig.PREDICT]
    assert set(default.structured_input_signature[1]) == {sig.TEXT_A, sig.TEXT_B}
    expected = pair_model.predict((TEXTS, PAIRS), verbose=0)
    got = default(text_a=tf.constant(TEXTS), text_b=tf.constant(PAIRS))
    np.testing.assert_allclose(got[sig.LOGITS], expected, atol=1e-5, rtol=0)
    classify = loaded.signatures[sig.CLASSIFY]
    scores = classify(inputs=_examples(TEXTS, PAIRS))[sig.SCORES]
    np.testing.assert_allclose(scores, tf.nn.softmax(expected), atol=1e-5, rtol=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="trained on text pairs"):
        classify(inputs=_examples(TEXTS, [*PAIRS[:-1], None]))
    with pytest.raises(ValueError, match="trained on text pairs"):
        build_tflite(pair_model, str(tmp_path / "pairs.tflite"))
    with pytest.raises(ValueError, match="trained on text pairs"):
        SavedModelClassifier(str(version))

    single_model = tiny_classifier(tiny_proto)
    single_model.preprocessor.text_pairs = False
    version = pathlib.Path(export_classifier(single_model, tmp_path / "single"))
    loaded, replayed = _replay_warmup(version)
    assert sig.PREDICT_PAIR not in loaded.signatures
    assert sorted(set(replayed)) == sorted(set(sig.SIGNATURES) - {sig.PREDICT_PAIR})
    classify = loaded.signatures[sig.CLASSIFY]
    with pytest.raises(tf.errors.InvalidArgumentError, match="on single texts"):
        classify(inputs=_examples(TEXTS, PAIRS))
    expected = single_model.predict(TEXTS, verbose=0)
    scores = classify(inputs=_examples(TEXTS, [None] * len(TEXTS)))[sig.SCORES]
    np.testing.assert_allclose(scores, tf.nn.softmax(expected), atol=1e-5, rtol=0)

    # Over gRPC, pairs sent to it are refused with what to do instead.
    from albert_tf.serving.client import ServingClient
    from albert_tf.serving.client import ServingError
    from albert_tf.serving.dev_server import DevServer

    server = DevServer("single", str(tmp_path / "single"), port=0)
    server.start()
    try:
        with ServingClient(f"127.0.0.1:{server.port}", "single") as client:
            with pytest.raises(ServingError, match="takes single texts; send them"):
                client.predict(TEXTS, pairs=PAIRS)
            np.testing.assert_allclose(
                client.predict(TEXTS)[sig.LOGITS], expected, atol=1e-5, rtol=0
            )
    finally:
        server.stop()
