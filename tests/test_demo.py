"""`albert-tf demo` end to end: every artifact exists and agrees with Keras."""

import json
import shlex

import numpy as np
import pytest

from albert_tf.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys, caplog):
    output = tmp_path / "demo"
    # An override (here the demo's own value) shows in the hand-run command.
    override = ["--set", "optimizer.warmup_ratio=0.1"]
    assert main(["demo", "--output", str(output), "--steps", "40", *override]) == 0
    summary = json.loads((output / "summary.json").read_text())
    for key in ("config", "model", "tflite"):
        assert (output / summary["paths"][key]).exists(), key
    export_base = output / "export" / "albert"
    versions = [v.name for v in export_base.iterdir() if v.name.isdigit()]
    assert versions == ["1"]
    assert (export_base / "1" / "saved_model.pb").is_file()
    assert (export_base / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert (export_base / "models.config").is_file()
    assert (output / "vocabulary.spm").is_file()
    # Same labels from Keras, the SavedModel over gRPC and TFLite.
    assert summary["agree"]
    for row in summary["examples"]:
        assert row["keras"] == row["grpc"] == row["tflite"]
    assert summary["grpc_max_abs_logit_diff"] <= 1e-5
    assert np.isfinite(summary["tflite_max_abs_logit_diff"])
    printed = capsys.readouterr().out
    assert "Dev accuracy" in printed and "albert-tf serve" in printed

    # The printed train command finds the finished run (not a refusal).
    command = next(
        line for line in printed.splitlines() if "albert-tf train --config" in line
    )
    assert command.endswith("--set optimizer.warmup_ratio=0.1")
    caplog.clear()
    assert main(shlex.split(command)[1:]) == 0
    assert "Training already finished at step 40" in caplog.text
    # Other data into the same folder is refused before anything there changes.
    vocabulary = (output / "vocabulary.spm").read_bytes()
    config = (output / "demo.yaml").read_text()
    other = tmp_path / "other.tsv"
    other.write_text("sentence\tlabel\na fine film\tpositive\na dull one\tnegative\n")
    args = ["demo", "--output", str(output), "--steps", "40", *override]
    assert main([*args, "--data", str(other)]) == 1
    err = capsys.readouterr().err
    assert f"'{output}' holds a demo of other settings (data.dev: " in err
    assert "pass --output NEW_FOLDER" in err
    assert (output / "vocabulary.spm").read_bytes() == vocabulary
    assert (output / "demo.yaml").read_text() == config


def test_demo_names_a_missing_data_file(tmp_path, capsys):
    missing = tmp_path / "nope.tsv"
    assert main(["demo", "--data", str(missing), "--output", str(tmp_path)]) == 1
    assert "nope.tsv" in capsys.readouterr().err


def test_demo_refuses_column_settings_it_would_ignore(tmp_path, capsys):
    # Its own evaluation reads single texts: pairs would be scored alone.
    args = ["demo", "--output", str(tmp_path), "--set", "data.text_pair_column=b"]
    assert main(args) == 1
    assert "--set data.text_pair_column: the demo reads" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_demo_checks_its_data_files_before_training(tmp_path, capsys):
    own = tmp_path / "own.csv"
    own.write_text("id,text,intent\n1,hello,greet\n")
    assert main(["demo", "--data", str(own), "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "own.csv:line 2: missing text column 'sentence'" in err
    assert "the demo reads `sentence` and `label` columns" in err
    assert not (tmp_path / "o" / "run").exists()
    # A bad row points at the demo's own way of skipping it.
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nfine\tpositive\nno label\n")
    assert main(["demo", "--data", str(bad), "--output", str(tmp_path / "o")]) == 1
    assert "line 3: expected 2 columns (sentence, label), got 1 (use --set " in (
        capsys.readouterr().err
    )
    # With skipping on, the bad training row is skipped; the dev file is read next.
    args = [
        "demo",
        "--data",
        str(bad),
        "--dev",
        str(own),
        "--output",
        str(tmp_path / "o"),
    ]
    assert main([*args, "--set", "data.skip_bad_rows=true"]) == 1
    assert "own.csv:line 2: missing text column 'sentence'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "run").exists()


def test_the_printed_overrides_read_back_as_given():
    from albert_tf.demo import override_arguments
    from albert_tf.training.config import parse_overrides

    overrides = {
        "data.dev": None,
        "data.skip_bad_rows": True,
        "optimizer.learning_rate": 0.002,
        "data.label_names": ["neg", "pos"],
        "output_dir": "runs/my demo",
    }
    assert parse_overrides(override_arguments(overrides)) == overrides
