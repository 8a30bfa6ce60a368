"""Training config loading and validation."""

import os
import re

import pytest
import yaml

from albert_tf.training.config import load_config
from albert_tf.training.config import parse_overrides
from tests.training_helpers import REPO
from tests.training_helpers import TINY_CONFIG


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
model:
  vocabulary: vocab.spm
  backbone: {num_layers: 2}
data:
  train: data/train.tsv
"""


def test_tiny_config_paths_resolve_from_config_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # The CWD must not matter.
    config = load_config(TINY_CONFIG)
    shared = REPO.parent / "shared" / "data"
    assert config.model.vocabulary == str(shared / "albert" / "spiece.model")
    assert config.data.train == str(shared / "sst2" / "train.tsv")
    assert config.output_dir == str(REPO / "runs" / "tiny")
    assert config.model.backbone.hidden_dim == 16


def test_shipped_configs_are_valid():
    for name in ("tiny", "sst2_scratch", "sst2_albert_base"):
        load_config(REPO / "configs" / f"{name}.yaml")
    base = load_config(REPO / "configs" / "sst2_albert_base.yaml")
    # The paper's SST-2 recipe (Lan et al., 2019, Appendix A.4).
    assert base.optimizer.learning_rate == 1e-5
    assert base.training.global_batch_size == 32
    assert base.training.steps == 20935
    assert base.optimizer.warmup_steps == 1256


def test_unknown_key_is_named(tmp_path):
    path = _write(tmp_path, MINIMAL + "  shufle_buffer: 10\n")
    with pytest.raises(
        ValueError, match=r"c\.yaml:line 7: unknown config key 'data\.shufle_buffer'"
    ):
        load_config(path)
    path = _write(tmp_path, MINIMAL + "learning_rate: 1\n")
    with pytest.raises(
        ValueError, match=r"c\.yaml:line 7: unknown config key 'learning_rate'"
    ):
        load_config(path)
    # Inside an optional section (and a flow mapping), the key itself is named.
    bad = MINIMAL.replace("{num_layers: 2}", "{num_layers: 2, num_heads: abc}")
    with pytest.raises(
        ValueError,
        match=r"c\.yaml:line 4: config key 'model\.backbone\.num_heads': expected "
        r"int, got str 'abc'",
    ):
        load_config(_write(tmp_path, bad))
    # A list item is found by its list's key.
    listed = MINIMAL + "  label_names: [a, 1]\n"
    with pytest.raises(
        ValueError, match=r"c\.yaml:line 7: config key 'data\.label_names\[1\]'"
    ):
        load_config(_write(tmp_path, listed))
    # A key the file does not hold gets no line, even in a section it holds.
    no_train = MINIMAL.replace("  train: data/train.tsv", "  dev: data/dev.tsv")
    with pytest.raises(ValueError, match=r"c\.yaml: config key 'data\.train'"):
        load_config(_write(tmp_path, no_train))
    with pytest.raises(ValueError, match=r"c\.yaml: config key 'data\.train'"):
        load_config(
            _write(tmp_path, MINIMAL.replace("data:\n  train: data/train.tsv\n", ""))
        )


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            "training:\n  global_batch_size: abc\n",
            "'training.global_batch_size': expected int, got str 'abc'",
        ),
        ("training:\n  steps: true\n", "'training.steps': expected int"),
        # bool is an int subclass: `true` must not pass as 1.0.
        (
            "optimizer:\n  learning_rate: true\n",
            "'optimizer.learning_rate': expected float, got bool True",
        ),
        ("model:\n  dropout: false\n", "'model.dropout': expected float, got bool"),
        ("strategy:\n  jit_compile: 1\n", "'strategy.jit_compile': expected bool"),
        ("optimizer: 3\n", "'optimizer': expected a mapping"),
        ("data2: {}\n", "unknown config key 'data2'"),
        ("strategy:\n  name: gpu\n", "'strategy.name': expected one of"),
        (
            "training:\n  global_batch_size: 0\n",
            "'training.global_batch_size': must be > 0",
        ),
    ],
)
def test_bad_values_are_named(tmp_path, extra, message):
    path = _write(tmp_path, MINIMAL + extra)
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        load_config(path)


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "optimizer.learning_rate",
            float("nan"),
            "learning_rate': must be > 0, got nan",
        ),
        ("optimizer.learning_rate", -1.0, "learning_rate': must be > 0, got -1.0"),
        ("optimizer.clipnorm", -1.0, "'optimizer.clipnorm': must be > 0"),
        ("strategy.join_timeout_s", 0, "'strategy.join_timeout_s': must be > 0"),
        ("optimizer.warmup_steps", -5, "'optimizer.warmup_steps': must be >= 0"),
        ("optimizer.weight_decay", -1.0, "'optimizer.weight_decay': must be >= 0"),
        ("optimizer.beta_2", 1.0, "'optimizer.beta_2': must be in [0, 1), got 1.0"),
        ("model.backbone.num_layers", 0, "'model.backbone.num_layers': must be > 0"),
        ("model.backbone.dropout", 1.0, "'model.backbone.dropout': must be in [0, 1)"),
        (
            "model.backbone.num_heads",
            3,
            "'model.backbone.num_heads': 3 does not divide "
            "'model.backbone.hidden_dim' (16)",
        ),
        (
            "model.backbone.num_groups",
            3,
            "'model.backbone.num_groups': 3 does not divide "
            "'model.backbone.num_layers' (2)",
        ),
        ("data.bucket_boundaries", [8, 4], "'data.bucket_boundaries': must increase"),
        ("data.bucket_boundaries", [200], "below model.sequence_length (128)"),
        ("data.label_names", ["a", "a"], "'data.label_names': duplicate names"),
        ("data.label_names", [], "'data.label_names': a classifier needs at least 2"),
        (
            "strategy.mixed_precision",
            "bfloat16",
            "would keep the weights in bfloat16, too coarse",
        ),
        ("seed", -1, "'seed': must be in [0, 2**32 - 1], got -1"),
        ("optimizer.warmup_ratio", 1.5, "'optimizer.warmup_ratio': must be in [0, 1]"),
        ("optimizer.warmup_ratio", -0.1, "'optimizer.warmup_ratio': must be in [0, 1]"),
        ("data.train", None, "'data.train': a training file is required"),
        (
            "training.class_weights",
            "auto",
            "'training.class_weights': expected 'balanced' or a mapping",
        ),
        (
            "training.class_weights",
            {"a": -1},
            "'training.class_weights.a': must be >= 0",
        ),
        (
            "training.class_weights",
            {"a": "heavy"},
            "'training.class_weights.a': expected float, got str 'heavy'",
        ),
        (
            "training.early_stopping_patience",
            0,
            "'training.early_stopping_patience': must be > 0, got 0",
        ),
        (
            "training.early_stopping_patience",
            3,
            "'training.early_stopping_patience': counts dev evaluations during "
            "training, so it needs 'data.dev'",
        ),
        (
            "strategy.mixed_precision",
            "fp16",
            "'strategy.mixed_precision': expected true, false or one of float32",
        ),
        (
            "model.sequence_length",
            513,
            "'model.sequence_length': 513 exceeds "
            "'model.backbone.max_sequence_length' (512)",
        ),
        (
            "model.backbone.max_sequence_length",
            64,
            "'model.sequence_length': 128 exceeds "
            "'model.backbone.max_sequence_length' (64)",
        ),
    ],
)
def test_out_of_range_values_are_named(tmp_path, key, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(_write(tmp_path, MINIMAL), overrides={key: value})


def test_class_weight_names_may_hold_dots_and_booleans_are_explained(tmp_path):
    path = _write(tmp_path, MINIMAL)
    items = ["training.class_weights={v1.0: 2, other: 1}"]
    config = load_config(path, overrides=parse_overrides(items))
    assert config.training.class_weights == {"v1.0": 2.0, "other": 1.0}
    items = ["training.class_weights.other=3"]  # One class, by dotted key.
    assert load_config(
        path, overrides=parse_overrides(items)
    ).training.class_weights == {"other": 3.0}
    with pytest.raises(ValueError, match="got bool True .*: quote the name"):
        load_config(
            path, overrides=parse_overrides(["training.class_weights={yes: 2}"])
        )


def test_errors_in_a_part_of_an_override_name_the_override(tmp_path):
    path = _write(tmp_path, MINIMAL)
    for item, part in [
        ("data.label_names=[0, 1]", "data.label_names[0]"),
        ("training.class_weights={a: -1}", "training.class_weights.a"),
    ]:
        with pytest.raises(ValueError) as info:
            load_config(path, overrides=parse_overrides([item]))
        key = item.split("=")[0]
        assert str(info.value).startswith(f"{path} with {key}="), str(info.value)
        assert f": config key '{part}'" in str(info.value)


def test_set_values_that_are_empty_or_not_yaml_are_named(tmp_path):
    # An empty shell variable would otherwise unset the key (a full epoch
    # instead of a few steps).
    with pytest.raises(ValueError, match=r"--set training.steps: empty value"):
        parse_overrides(["training.steps="])
    with pytest.raises(
        ValueError, match=r"--set data.label_names: '\[a' is not a YAML"
    ):
        parse_overrides(["data.label_names=[a"])
    assert parse_overrides(["training.steps=null"]) == {"training.steps": None}
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n\tpreset: x\n")  # A tab.
    with pytest.raises(ValueError, match=r"bad.yaml:line 2: invalid YAML: found"):
        load_config(bad)
    # Label names YAML reads as booleans say so.
    with pytest.raises(ValueError, match=r"label_names\[0\]'.*got bool False.*quote"):
        parse_and_load = parse_overrides(["data.label_names=[no, yes]"])
        load_config(_write(tmp_path, MINIMAL), overrides=parse_and_load)
    # Notepad's UTF-16 loads; a binary file (a model given by mistake) is named.
    notepad = tmp_path / "notepad.yaml"
    notepad.write_text(MINIMAL, encoding="utf-16")
    assert load_config(notepad).data.train.endswith("train.tsv")
    model = tmp_path / "model.keras"
    model.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xf7\x9c")
    with pytest.raises(ValueError, match=r"model.keras: not a UTF-8 text file"):
        load_config(model)


def test_early_stopping_needs_evaluations_during_training(tmp_path):
    overrides = {"data.dev": "dev.tsv", "training.early_stopping_patience": 3}
    with pytest.raises(ValueError, match="so it needs 'training.eval_every_steps'"):
        load_config(_write(tmp_path, MINIMAL), overrides=overrides)
    overrides["training.eval_every_steps"] = 100
    config = load_config(_write(tmp_path, MINIMAL), overrides=overrides)
    assert config.training.early_stopping_patience == 3


def test_boundary_values_are_accepted(tmp_path):
    """The limits themselves are valid: warmup over all steps, full length."""
    config = load_config(
        _write(tmp_path, MINIMAL),
        overrides={
            "optimizer.warmup_ratio": 1.0,
            "model.sequence_length": 512,
            "optimizer.learning_rate": 1,  # An int is a fine float.
        },
    )
    assert config.optimizer.warmup_ratio == 1.0
    assert config.model.sequence_length == 512
    assert config.optimizer.learning_rate == 1.0
    assert isinstance(config.optimizer.learning_rate, float)
    path = _write(tmp_path, "model: {vocabulary: v.spm, backbone: {}}\n")
    with pytest.raises(ValueError, match="'data.train': a training file is required"):
        load_config(path)


def test_model_must_be_a_preset_or_backbone_and_vocabulary(tmp_path):
    path = _write(tmp_path, "data: {train: t.tsv}\nmodel: {vocabulary: v.spm}\n")
    with pytest.raises(ValueError, match="set either 'model.preset'"):
        load_config(path)
    path = _write(tmp_path, MINIMAL + "  dev: d.tsv\n")
    load_config(path, overrides={"model.backbone": None, "model.preset": "p"})
    with pytest.raises(ValueError, match="exclusive"):
        load_config(path, overrides={"model.preset": "p"})


def test_a_local_preset_resolves_like_the_other_paths(monkeypatch, tmp_path):
    path = _write(tmp_path, "data: {train: t.tsv}\nmodel: {preset: presets/base}\n")
    monkeypatch.chdir(tmp_path.parent)  # The CWD must not matter.
    preset = load_config(path).model
    assert preset.preset == str(tmp_path / "presets" / "base")
    # Text flags: a preset's own unless set; from scratch, original ALBERT's.
    assert preset.lowercase is None and preset.strip_accents is None
    for handle in ("albert_base_en_uncased", "hf://albert/albert-base-v2"):
        config = load_config(path, overrides={"model.preset": handle})
        assert config.model.preset == handle
    scratch = load_config(_write(tmp_path, MINIMAL)).model
    assert scratch.lowercase is True and scratch.strip_accents is True


def test_overrides_are_typed_and_paths_relative_to_cwd(monkeypatch, tmp_path):
    path = _write(tmp_path, MINIMAL)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    overrides = parse_overrides(
        ["training.steps=7", "optimizer.learning_rate=3e-4", "data.dev=dev.tsv"]
    )
    config = load_config(path, overrides=overrides)
    assert config.training.steps == 7
    assert config.optimizer.learning_rate == 3e-4
    assert config.data.dev == str(elsewhere / "dev.tsv")
    assert config.data.train == os.path.join(str(tmp_path), "data", "train.tsv")
    with pytest.raises(ValueError, match="'training.steps': expected int"):
        load_config(path, overrides=parse_overrides(["training.steps=many"]))
    with pytest.raises(ValueError, match="--set expects key=value"):
        parse_overrides(["training.steps"])
    # From Python, a section as a mapping changes only the keys it names
    # (it used to replace the whole section with defaults).
    nested = load_config(
        path,
        overrides={"model": {"backbone": {"hidden_dim": 8}}, "data": {"dev": "d.tsv"}},
    )
    assert nested.model.backbone.num_layers == 2  # From the file, kept.
    assert nested.model.backbone.hidden_dim == 8
    assert nested.model.vocabulary == str(tmp_path / "vocab.spm")
    assert nested.data.dev == str(elsewhere / "d.tsv")  # Relative to the CWD.
    with pytest.raises(ValueError, match=r"^override training.stpes=5: unknown"):
        load_config(data=yaml.safe_load(MINIMAL), overrides={"training": {"stpes": 5}})


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    from albert_tf.cli import main

    path = _write(tmp_path, MINIMAL + "  colour: red\n")
    assert main(["train", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("albert-tf train: error: ")
    assert "unknown config key 'data.colour'" in err[-1]
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "config file not found" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path)]) == 1
    assert "is a folder; pass a YAML file" in capsys.readouterr().err
    good = _write(tmp_path, MINIMAL)
    # An output folder under a file fails before any work.
    (tmp_path / "a_file").write_text("")
    output = tmp_path / "a_file" / "run"
    assert main(["train", "--config", str(good), "--output", str(output)]) == 1
    assert f"'{tmp_path / 'a_file'}' is a file, not a folder" in capsys.readouterr().err
    # A typo on the command line is named as such, not as the file's.
    assert main(["train", "--config", str(good), "--set", "training.stpes=5"]) == 1
    err = capsys.readouterr().err
    assert f"{good} with training.stpes=5: unknown config key" in err
    # Also a typo in the section name.
    assert main(["train", "--config", str(good), "--set", "traning.steps=5"]) == 1
    err = capsys.readouterr().err
    assert f"{good} with traning.steps=5: unknown config key 'traning'" in err
