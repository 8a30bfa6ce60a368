"""Presets: built-in table, save/load round trips, hub handles, the CLI.

No network: the Hugging Face hub is a loopback HTTP server speaking the
endpoints `huggingface_hub` calls, and "offline" is a proxy on a closed
127.0.0.1 port.
"""

import contextlib
import hashlib
import http.server
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest

from albert_tf import cli
from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer
from albert_tf.models import TextClassifier
from albert_tf.models import Tokenizer
from albert_tf.models import load_classifier
from albert_tf.presets import BUILTIN_PRESETS
from albert_tf.presets import count_backbone_params
from albert_tf.presets import resolve_preset
from tests.helpers import dead_writers_temp_folder
from tests.helpers import padded_inputs
from tests.helpers import tiny_backbone_kwargs

TEXTS = ["The quick brown fox jumped.", "What an amazing movie!"]
KERAS_HUB_PARAMS = {  # keras-hub's published counts (ANCHORS.md).
    "albert_base_en_uncased": 11_683_584,
    "albert_large_en_uncased": 17_683_968,
    "albert_extra_large_en_uncased": 58_724_864,
    "albert_extra_extra_large_en_uncased": 222_595_584,
}


def _tiny_classifier(tiny_proto, groups=1, **kwargs):
    tokenizer = AlbertTokenizer(proto=tiny_proto)
    preprocessor = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=12)
    backbone = AlbertBackbone(
        **tiny_backbone_kwargs(
            num_groups=groups, num_inner_repetitions=groups, num_layers=2 * groups
        )
    )
    return AlbertTextClassifier(
        backbone,
        num_classes=2,
        preprocessor=preprocessor,
        label_names=["negative", "positive"],
        **kwargs,
    )


def test_builtin_presets_and_parameter_counts():
    assert set(AlbertBackbone.presets) == set(KERAS_HUB_PARAMS)
    assert set(AlbertTextClassifier.presets) == set(KERAS_HUB_PARAMS)
    for name, params in KERAS_HUB_PARAMS.items():
        assert count_backbone_params(BUILTIN_PRESETS[name]["config"]) == params
        assert BUILTIN_PRESETS[name]["kaggle_handle"].startswith(
            "kaggle://keras/albert/"
        )
    # The analytic count is the real one (checked on built models) ...
    for groups in (1, 2):
        kwargs = tiny_backbone_kwargs(
            num_groups=groups, num_inner_repetitions=groups, num_layers=2 * groups
        )
        assert AlbertBackbone(**kwargs).count_params() == count_backbone_params(kwargs)
    # ... and the smallest built-in, built without weights, needs no network.
    base = AlbertBackbone.from_preset("albert_base_en_uncased", load_weights=False)
    assert base.count_params() == KERAS_HUB_PARAMS["albert_base_en_uncased"]


def test_classifier_round_trip(tmp_path, tiny_proto, caplog):
    classifier = _tiny_classifier(tiny_proto, groups=2)
    classifier.save_to_preset(str(tmp_path))
    for name in (
        "config.json",
        "tokenizer.json",
        "preprocessor.json",
        "task.json",
        "metadata.json",
        "model.weights.h5",
        "task.weights.h5",
        "assets/tokenizer/vocabulary.spm",
    ):
        assert (tmp_path / name).is_file(), name
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]

    loaded = TextClassifier.from_preset(str(tmp_path))
    assert isinstance(loaded, AlbertTextClassifier)
    assert loaded.label_names == ["negative", "positive"]
    np.testing.assert_array_equal(
        loaded.predict_on_batch(TEXTS), classifier.predict_on_batch(TEXTS)
    )
    assert isinstance(load_classifier(str(tmp_path)), AlbertTextClassifier)

    # kwargs override the preset.
    with caplog.at_level("WARNING", logger="albert_tf"):
        other = AlbertTextClassifier.from_preset(
            str(tmp_path), num_classes=3, preprocessor=None
        )
    assert other.num_classes == 3 and other.preprocessor is None
    assert other.label_names is None
    assert "its trained head and label names are dropped" in caplog.text
    # The preset's classes in another order: the head's rows follow the names.
    swapped = AlbertTextClassifier.from_preset(
        str(tmp_path), label_names=["positive", "negative"]
    )
    np.testing.assert_array_equal(
        swapped.predict_on_batch(TEXTS), classifier.predict_on_batch(TEXTS)[:, ::-1]
    )
    # Other names keep the head as it is, with a warning (not for LABEL_i).
    caplog.clear()
    with caplog.at_level("WARNING", logger="albert_tf"):
        renamed = AlbertTextClassifier.from_preset(
            str(tmp_path), label_names=["bad", "good"]
        )
    assert "are not the preset's ['negative', 'positive']" in caplog.text
    np.testing.assert_array_equal(
        renamed.predict_on_batch(TEXTS), classifier.predict_on_batch(TEXTS)
    )
    with pytest.raises(ValueError, match="share some names with the preset's"):
        AlbertTextClassifier.from_preset(str(tmp_path), label_names=["positive", "x"])
    # Keras models swallow unknown kwargs; from_preset names the typo.
    with pytest.raises(
        TypeError, match=r"unexpected keyword argument\(s\) \['num_class'\]"
    ):
        AlbertTextClassifier.from_preset(str(tmp_path), num_class=5)
    with pytest.raises(TypeError, match=r"\['num_classes'\]; it takes"):
        AlbertBackbone.from_preset(str(tmp_path), num_classes=2)
    short = AlbertTextClassifier.from_preset(str(tmp_path), sequence_length=8)
    assert short.preprocessor.sequence_length == 8
    bf16 = AlbertTextClassifier.from_preset(str(tmp_path), dtype="mixed_bfloat16")
    assert bf16.backbone.dtype_policy.name == "mixed_bfloat16"
    assert bf16.output_dense.dtype_policy.name == "mixed_bfloat16"
    np.testing.assert_allclose(
        bf16.predict_on_batch(TEXTS), classifier.predict_on_batch(TEXTS), atol=0.1
    )
    # Keras saves bfloat16 weights as tagged opaque bytes; they load back.
    pure = AlbertTextClassifier.from_preset(str(tmp_path), dtype="bfloat16")
    pure.save_to_preset(str(tmp_path / "bf16"))
    again = AlbertTextClassifier.from_preset(str(tmp_path / "bf16"), dtype="bfloat16")
    np.testing.assert_array_equal(
        np.asarray(again.predict_on_batch(TEXTS), np.float32),
        np.asarray(pure.predict_on_batch(TEXTS), np.float32),
    )
    random = AlbertTextClassifier.from_preset(str(tmp_path), load_weights=False)
    assert not np.allclose(  # The head too is new, not the preset's.
        random.output_dense.get_weights()[0],
        classifier.output_dense.get_weights()[0],
    )
    config = lambda model: {**model.backbone.get_config(), "name": None}  # noqa: E731
    assert config(random) == config(classifier)
    assert not np.allclose(
        random.predict_on_batch(TEXTS), classifier.predict_on_batch(TEXTS)
    )


def test_classifier_round_trip_keeps_activation_and_dropout(tmp_path, tiny_proto):
    classifier = _tiny_classifier(tiny_proto, activation="softmax", dropout=0.3)
    classifier.save_to_preset(str(tmp_path))
    loaded = AlbertTextClassifier.from_preset(str(tmp_path))
    assert loaded.activation is keras.activations.softmax
    assert (loaded.dropout, loaded.output_dropout.rate) == (0.3, 0.3)
    np.testing.assert_allclose(
        loaded.predict_on_batch(TEXTS), classifier.predict_on_batch(TEXTS), atol=1e-6
    )


def test_backbone_tokenizer_preprocessor_round_trip(tmp_path, tiny_proto):
    backbone = AlbertBackbone(**tiny_backbone_kwargs())
    backbone.save_to_preset(str(tmp_path))
    tokenizer = AlbertTokenizer(
        proto=tiny_proto, lowercase=False, strip_accents=False, fast=True
    )
    AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=10, truncate="waterfall"
    ).save_to_preset(str(tmp_path))
    inputs = padded_inputs()
    np.testing.assert_array_equal(
        AlbertBackbone.from_preset(str(tmp_path))(inputs)["pooled_output"],
        backbone(inputs)["pooled_output"],
    )
    # kwargs override the preset's config, with and without its weights.
    for load_weights in (True, False):
        overridden = AlbertBackbone.from_preset(
            str(tmp_path), load_weights=load_weights, dropout=0.25
        )
        assert overridden.dropout == 0.25
    # The generic base, as keras_hub.models.Tokenizer, finds the ALBERT class.
    assert type(Tokenizer.from_preset(str(tmp_path))) is AlbertTokenizer
    loaded = AlbertTokenizer.from_preset(str(tmp_path))
    assert (loaded.lowercase, loaded.strip_accents, loaded.fast, loaded.proto) == (
        False,
        False,
        True,
        tiny_proto,
    )
    preprocessor = AlbertTextClassifierPreprocessor.from_preset(str(tmp_path))
    assert (preprocessor.sequence_length, preprocessor.truncate) == (10, "waterfall")
    assert preprocessor(np.array(TEXTS))["token_ids"].shape == (2, 10)


@pytest.mark.parametrize(
    "handle",
    [
        "hf://../etc",
        "hf://owner/repo/extra",
        "hf:///abs/path",
        "hf://owner/re po",
        "hf://owner",
        "kaggle://keras/albert/../x",
        "kaggle://keras/albert",
        "kaggle://keras/albert/keras",
        "kaggle://keras/albert/keras/albert_base_en_uncased/5/x",
        "kaggle:///etc/passwd/x/y",
    ],
)
def test_unsafe_or_malformed_handles_are_refused(handle, tmp_path, monkeypatch):
    _go_offline(monkeypatch, str(tmp_path))  # A handle let through fails fast.
    with pytest.raises(ValueError, match="Invalid preset handle"):
        resolve_preset(handle)


def test_unknown_preset_lists_the_accepted_forms():
    with pytest.raises(FileNotFoundError, match="albert_base_en_uncased.*hf://"):
        AlbertBackbone.from_preset("no_such_preset")


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # Closed once the socket is.


def test_builtin_id_offline_fails_fast_and_explains(tmp_path, monkeypatch):
    _go_offline(monkeypatch, str(tmp_path / "kagglehub"))
    start = time.monotonic()
    with pytest.raises(ValueError) as error:
        AlbertTextClassifier.from_preset("albert_base_en_uncased", num_classes=2)
    assert time.monotonic() - start < 30
    message = str(error.value)
    assert "kaggle://keras/albert/keras/albert_base_en_uncased" in message
    assert str(tmp_path / "kagglehub") in message
    assert "local directory" in message
    # From a training config, the hint names the config key.
    from albert_tf.training.config import ModelConfig
    from albert_tf.training.model_factory import build_classifier

    config = ModelConfig(preset="albert_base_en_uncased")
    with pytest.raises(ValueError, match="--set model.preset=/path/to/preset_dir"):
        build_classifier(config, ["a", "b"], None)


def _go_offline(monkeypatch, kagglehub_cache):
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, proxy)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLEHUB_CACHE", kagglehub_cache)


def test_builtin_id_and_kaggle_handle_load_from_kagglehub_cache_offline(
    tmp_path, monkeypatch, tiny_proto, caplog
):
    _go_offline(monkeypatch, str(tmp_path))
    # kagglehub's own cache layout: models/owner/model/framework/variation/N.
    variation = tmp_path / "models" / "keras" / "albert" / "keras"
    variation = variation / "albert_base_en_uncased"
    _tiny_classifier(tiny_proto).save_to_preset(str(variation / "5"))
    (variation / "5.complete").write_text("")

    classifier = AlbertTextClassifier.from_preset("albert_base_en_uncased")
    assert classifier.label_names == ["negative", "positive"]
    handle = "kaggle://keras/albert/keras/albert_base_en_uncased/5"
    assert AlbertTokenizer.from_preset(handle).proto == tiny_proto
    # Unversioned: "latest" needs the API; offline, the newest cached version.
    (variation / "2").mkdir()
    (variation / "2.complete").write_text("")
    (variation / "9").mkdir()  # Incomplete download: no marker.
    with caplog.at_level(logging.WARNING, logger="albert_tf"):
        tokenizer = AlbertTokenizer.from_preset(handle[: -len("/5")])
    assert tokenizer.proto == tiny_proto
    assert "loading version 5 from the kagglehub cache" in caplog.text


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """`/{owner}/{repo}/resolve/{revision}/{file}`, as the HF hub serves it."""

    files = {}  # "owner/repo/file" -> bytes
    commit = "0123456789abcdef0123456789abcdef01234567"

    def _lookup(self):
        parts = self.path.split("?")[0].lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return None
        return self.files.get("/".join(parts[:2] + parts[4:]))

    def _respond(self, with_body):
        data = self._lookup()
        if data is None:
            self.send_response(404)
            self.send_header("X-Repo-Commit", self.commit)  # As the Hub sends.
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Error-Message", "Entry not found")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", self.commit)
        self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def do_HEAD(self):  # noqa: N802
        self._respond(with_body=False)

    def do_GET(self):  # noqa: N802
        self._respond(with_body=True)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _fake_hub(files):
    _HubHandler.files = files
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _run_cli(args, env):
    return subprocess.run(
        [sys.executable, "-m", "albert_tf.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )


@pytest.mark.slow
def test_hf_handle_downloads_through_huggingface_hub_then_works_offline(
    tmp_path, tiny_proto
):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tests.helpers import tiny_hf_albert_config

    torch.manual_seed(0)
    source = tmp_path / "source"
    model = transformers.AlbertForSequenceClassification(
        tiny_hf_albert_config(
            num_labels=2, id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1}
        )
    ).eval()
    model.save_pretrained(source)
    (tmp_path / "v.spm").write_bytes(tiny_proto)
    transformers.AlbertTokenizer(str(tmp_path / "v.spm")).save_pretrained(source)
    files = {f"someone/tiny-albert/{p.name}": p.read_bytes() for p in source.iterdir()}

    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("HF_HUB_OFFLINE", None)
    with _fake_hub(files) as endpoint:
        online = _run_cli(
            ["convert", "hf://someone/tiny-albert", str(tmp_path / "a")],
            dict(env, HF_ENDPOINT=endpoint),
        )
    assert online.returncode == 0, online.stderr[-2000:]
    assert "parameters:" in online.stdout and "weights sha256:" in online.stdout
    # The server is gone: HF_HUB_OFFLINE=1 serves the same files from the cache.
    offline = _run_cli(
        ["convert", "hf://someone/tiny-albert", str(tmp_path / "b")],
        dict(env, HF_HUB_OFFLINE="1", HF_ENDPOINT=endpoint),
    )
    assert offline.returncode == 0, offline.stderr[-2000:]
    checksum = [line for line in online.stdout.splitlines() if "sha256" in line]
    assert checksum == [x for x in offline.stdout.splitlines() if "sha256" in x]
    # Without HF_HUB_OFFLINE the cache serves too, at once: huggingface_hub
    # alone retries the closed port for ~20 s per file first (5 min in all).
    unreachable = _run_cli(
        ["convert", "hf://someone/tiny-albert", str(tmp_path / "c")],
        dict(env, HF_ENDPOINT=endpoint),
    )
    assert unreachable.returncode == 0, unreachable.stderr[-2000:]
    assert "Retrying" not in unreachable.stderr
    assert checksum == [x for x in unreachable.stdout.splitlines() if "sha256" in x]
    # A cache that lacks a file it never looked for (a download cut short)
    # cannot tell a repo without it (an uncased default) from a lost one.
    cached = tmp_path / "hf_home" / "hub" / "models--someone--tiny-albert"
    (links,) = list((cached / "snapshots").glob("*/tokenizer_config.json"))
    links.unlink()
    partial = _run_cli(
        ["convert", "hf://someone/tiny-albert", str(tmp_path / "d")],
        dict(env, HF_HUB_OFFLINE="1", HF_ENDPOINT=endpoint),
    )
    assert partial.returncode == 1
    assert "only partly in the Hugging Face cache" in partial.stderr
    assert "tokenizer_config.json was never looked for" in partial.stderr

    classifier = load_classifier(str(tmp_path / "a"))
    assert classifier.label_names == ["bad", "good"]
    tokenizer = transformers.AlbertTokenizer.from_pretrained(source)
    encoded = tokenizer(
        TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        expected = model(**encoded).logits.numpy()
    np.testing.assert_allclose(
        classifier.predict_on_batch(TEXTS), expected, atol=1e-5, rtol=0
    )


def test_unreachable_hub_fails_after_config_json(monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    import requests
    from huggingface_hub.utils import LocalEntryNotFoundError

    requested = []

    def no_network(self, repo_id, **kwargs):
        raise requests.ConnectionError("no route to host")

    def cache_only(repo_id, filename, local_files_only=False, **kwargs):
        # What huggingface_hub raises for a file missing from the cache.
        requested.append((filename, local_files_only))
        raise LocalEntryNotFoundError("not in the cache")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", no_network)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", cache_only)
    with pytest.raises(
        ValueError,
        match="Could not download 'hf://someone/x': .* cannot be reached and the "
        "repo is not in the Hugging Face cache",
    ):
        AlbertBackbone.from_preset("hf://someone/x")
    # Straight to the cache, and no file after config.json is tried.
    assert requested == [("config.json", True)]


def _hand_built_hf_cache(cache, repo_id, source, mark_missing=True):
    """`source`'s files cached as huggingface_hub caches a repo; with
    `mark_missing`, every other file albert_tf looks for is cached as missing
    (`.no_exist`), as after `hf_hub_download` calls; without, the cache is as
    `snapshot_download` leaves it."""
    from albert_tf.presets.convert_huggingface import WEIGHT_FILES
    from albert_tf.presets.handles import PRESET_FILES
    from albert_tf.presets.handles import TRANSFORMERS_FILES

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(_HubHandler.commit)
    snapshot = repo / "snapshots" / _HubHandler.commit
    shutil.copytree(source, snapshot)
    for name in (*PRESET_FILES, *TRANSFORMERS_FILES, *WEIGHT_FILES):
        if mark_missing and not (snapshot / name).exists():
            marker = repo / ".no_exist" / _HubHandler.commit / name
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()


@pytest.mark.parametrize("shards", [False, True], ids=["pytorch_bin", "sharded"])
def test_hf_handle_of_a_weights_only_repo_fetches_its_pytorch_weights(
    tmp_path, monkeypatch, shards
):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    pytest.importorskip("torch")  # Reads pytorch_model.bin.
    transformers = pytest.importorskip("transformers")
    from tests.helpers import tiny_hf_albert_config

    # A fine-tune pushed without its tokenizer: config.json and weights only.
    source = tmp_path / "source"
    model = transformers.AlbertModel(tiny_hf_albert_config())
    model.save_pretrained(
        source,
        safe_serialization=False,
        **({"max_shard_size": "10KB"} if shards else {}),
    )
    _hand_built_hf_cache(tmp_path / "hub", "me/weights-only", source)
    _go_offline(monkeypatch, str(tmp_path / "kagglehub"))
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub")
    )
    requested = []
    download = huggingface_hub.hf_hub_download

    def recorded(repo_id, filename, **kwargs):
        requested.append(filename)
        return download(repo_id, filename, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recorded)
    backbone = AlbertBackbone.from_preset("hf://me/weights-only")
    # Online, every file the repo holds would be downloaded.
    assert {p.name for p in source.iterdir()} <= set(requested)
    np.testing.assert_array_equal(
        backbone.token_embedding.embeddings.numpy(),
        model.embeddings.word_embeddings.weight.detach().numpy(),
    )


def test_hf_handle_loads_offline_from_a_snapshot_download_cache(
    tmp_path, monkeypatch, tiny_proto
):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    transformers = pytest.importorskip("transformers")
    from tests.helpers import tiny_hf_albert_config

    # What `snapshot_download` leaves: the repo's files, no `.no_exist`
    # records of the preset files a transformers repo never has.
    source = tmp_path / "source"
    model = transformers.AlbertForSequenceClassification(
        tiny_hf_albert_config(num_labels=3)
    )
    model.save_pretrained(source)
    (source / "spiece.model").write_bytes(tiny_proto)
    (source / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    _hand_built_hf_cache(tmp_path / "hub", "me/full", source, mark_missing=False)
    _go_offline(monkeypatch, str(tmp_path / "kagglehub"))
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub")
    )
    classifier = AlbertTextClassifier.from_preset("hf://me/full")
    assert classifier.num_classes == 3
    np.testing.assert_array_equal(
        classifier.output_dense.kernel.numpy(),
        model.classifier.weight.detach().numpy().T,
    )


def test_convert_cli_writes_nothing_on_failure(tmp_path, tiny_proto, capsys):
    from tests.test_convert_google_tf1 import write_release

    source = tmp_path / "release"
    source.mkdir()
    write_release(source, tiny_proto, groups=2)
    dead = dead_writers_temp_folder(tmp_path, "convert")  # A killed convert's.
    assert cli.main(["convert", str(source), str(tmp_path / "out")]) == 0
    assert not os.path.exists(dead)
    out = capsys.readouterr().out
    assert "backbone: vocabulary_size=80, num_layers=4, " in out
    assert "num_groups=2, " in out and "parameters:" in out and "sha256:" in out
    converted = AlbertBackbone.from_preset(str(tmp_path / "out"))
    original = AlbertBackbone.from_preset(str(source))
    inputs = padded_inputs()
    np.testing.assert_array_equal(
        converted(inputs)["pooled_output"], original(inputs)["pooled_output"]
    )
    assert AlbertTextClassifierPreprocessor.from_preset(str(tmp_path / "out"))

    (source / "albert_config.json").write_text('{"vocab_size": 80')  # Truncated.
    assert cli.main(["convert", str(source), str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err
    assert "albert-tf convert: error:" in err and "albert_config.json" in err
    assert not (tmp_path / "bad").exists()
    assert sorted(os.listdir(tmp_path)) == ["out", "release"]
    # Nor the folders made to hold it.
    nested = tmp_path / "new" / "x" / "out"
    assert cli.main(["convert", str(source), str(nested)]) == 1
    assert sorted(os.listdir(tmp_path)) == ["out", "release"]
    # An existing non-empty output is never overwritten.
    assert cli.main(["convert", str(tmp_path / "out"), str(tmp_path / "out")]) == 1
    assert "not empty" in capsys.readouterr().err
    # Outputs that cannot be written fail before the source is even read.
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert cli.main(["convert", "missing_source", str(a_file)]) == 1
    assert f"Output '{a_file}' is a file" in capsys.readouterr().err
    assert cli.main(["convert", "missing_source", str(a_file / "out")]) == 1
    assert f"Cannot write the preset to '{a_file / 'out'}'" in (capsys.readouterr().err)
    # A file of a checkpoint: its folder is meant.
    weights = source / "albert_config.json"
    assert cli.main(["convert", str(weights), str(tmp_path / "f")]) == 1
    assert f"is a file, not a folder: pass the folder that holds it, '{source}'" in (
        capsys.readouterr().err
    )


def test_a_backbone_saved_over_a_classifier_preset_takes_its_head_away(
    tmp_path, tiny_proto, caplog
):
    classifier = _tiny_classifier(tiny_proto)
    classifier.save_to_preset(str(tmp_path))
    AlbertBackbone(**tiny_backbone_kwargs()).save_to_preset(str(tmp_path))
    assert "Removed the classifier head" in caplog.text
    # A head trained on the old backbone must not load onto the new one.
    with pytest.raises(ValueError, match="num_classes"):
        AlbertTextClassifier.from_preset(str(tmp_path))


def test_convert_publishes_a_trained_keras_model(tmp_path, tiny_proto):
    classifier = _tiny_classifier(tiny_proto)
    classifier.preprocessor.text_pairs = False  # As `train` records it.
    classifier.save(tmp_path / "model.keras")
    # from_preset points a .keras file to the loader that reads it...
    with pytest.raises(FileNotFoundError, match="load it with `albert_tf.models.load_"):
        AlbertTextClassifier.from_preset(str(tmp_path / "model.keras"))
    # ...and convert makes a preset of it, for from_preset and keras-hub.
    args = ["convert", str(tmp_path / "model.keras"), str(tmp_path / "preset")]
    assert cli.main(args) == 0
    published = AlbertTextClassifier.from_preset(str(tmp_path / "preset"))
    assert published.label_names == classifier.label_names
    assert published.preprocessor.text_pairs is False
    # A new head is free to be trained on pairs.
    fresh = AlbertTextClassifier.from_preset(str(tmp_path / "preset"), num_classes=3)
    assert fresh.preprocessor.text_pairs is None
    assert fresh.predict_on_batch((TEXTS, TEXTS)).shape == (len(TEXTS), 3)
    args = [*args[:2], str(tmp_path / "p2"), "--vocabulary", str(tmp_path / "v.spm")]
    assert cli.main(args) == 1 and not (tmp_path / "p2").exists()
    np.testing.assert_array_equal(
        published.predict_on_batch(TEXTS), classifier.predict_on_batch(TEXTS)
    )


@pytest.mark.parametrize(
    "files, given, hint",
    [
        (["albert.tflite"], "albert.tflite", "it is a TFLite build; run it with"),
        (
            ["saved_model.pb", "variables/variables.index"],
            "saved_model.pb",
            "it belongs to the SavedModel",
        ),
        (
            ["saved_model.pb", "tfhub_module.pb", "variables/variables.index"],
            "tfhub_module.pb",
            "it belongs to the TF-Hub module",
        ),
        (["config.json", "model.weights.h5"], "model.weights.h5", "pass the folder"),
        (["notes.txt"], "notes.txt", "pass a `.keras` model or a preset folder"),
    ],
)
def test_a_file_given_as_a_model_gets_a_hint_that_fits_it(
    tmp_path, files, given, hint, capsys
):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert cli.main(["predict", str(tmp_path / given), "A fine film."]) == 1
    err = capsys.readouterr().err
    assert f"Preset '{tmp_path / given}' is a file, not a folder: {hint}" in err


def test_a_bare_file_name_points_at_the_working_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("config.json", "model.weights.h5"):
        (tmp_path / name).write_bytes(b"")
    assert cli.main(["predict", "model.weights.h5", "A fine film."]) == 1
    assert "pass the folder that holds it, '.'" in capsys.readouterr().err


def test_predict_with_a_text_where_the_model_goes_says_so(tmp_path, capsys):
    assert cli.main(["predict", "A warm film.", "Dull."]) == 1
    err = capsys.readouterr().err
    assert "'A warm film.' is not a model: the first argument is MODEL" in err
    # A model path with a space that exists is a model path.
    (tmp_path / "my model").mkdir()
    assert cli.main(["predict", str(tmp_path / "my model"), "Dull."]) == 1
    err = capsys.readouterr().err
    assert "is not a model" not in err and "is not a preset" in err
