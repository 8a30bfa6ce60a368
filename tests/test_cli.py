"""The `albert-tf` entry point itself."""

import importlib
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version

import pytest
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port

import albert_tf
from albert_tf import cli_types
from albert_tf.cli import main
from albert_tf.native_logs import without_import_chatter
from tests.training_helpers import REPO


def test_version_names_the_package_and_the_versions_exports_depend_on(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    line = capsys.readouterr().out.strip()
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert albert_tf.__version__ == project["project"]["version"]
    assert line.startswith(f"albert-tf {albert_tf.__version__} (")
    for name in ("tensorflow", "tensorflow-text", "keras"):
        assert f"{name} {version(name)}" in line


def test_subpackages_are_attributes_of_the_package():
    # A fresh `import albert_tf` loads them on first attribute access.
    for name in ("presets", "serving", "tflite", "training"):
        module = albert_tf.__getattr__(name)
        assert module is importlib.import_module(f"albert_tf.{name}")
    assert albert_tf.training.train and albert_tf.serving.export_classifier
    with pytest.raises(AttributeError, match="no attribute 'trainig'"):
        albert_tf.trainig  # noqa: B018


# Runs `import albert_tf` in a fresh process, after `prelude`.
def _import_stderr(prelude="", after="", **env):
    code = f"{prelude}\nimport albert_tf\n{after}\nprint('imported')"
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, **env},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
    return result.stderr


def test_native_info_lines_are_off_unless_asked_for(tiny_proto, tmp_path):
    # INFO lines at import (oneDNN, CUDA stubs, CPU features), at the first
    # device use (cuInit's error where no driver was found) and later (a
    # TFLite conversion's "Estimated count of arithmetic ops", LiteRT's
    # delegate line when an interpreter starts).
    from albert_tf import tflite
    from albert_tf.models import AlbertTokenizer

    build = tmp_path / "tokenizer.tflite"
    build.write_bytes(tflite.convert_tokenizer(AlbertTokenizer(proto=tiny_proto), 8))
    later = (
        "import tensorflow as tf\n"
        "from albert_tf.native_logs import say_onednn_int_notice_quietly\n"
        "say_onednn_int_notice_quietly()\n"
        "tf.concat([tf.ragged.constant([[1]]), tf.ones([1, 1], tf.int32)], 1)\n"
        "f = tf.function(lambda x: x + 1, "
        "input_signature=[tf.TensorSpec([1], tf.float32)])\n"
        "tf.lite.TFLiteConverter.from_concrete_functions("
        "[f.get_concrete_function()], f).convert()\n"
        "import numpy as np\n"
        "from albert_tf import tflite\n"
        f"model = tflite.TFLiteClassifier({str(build)!r})\n"
        "model.run(text=np.array(['a b'], dtype=object))"
    )
    delegate = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
    stderr = _import_stderr(after=later)
    assert "oneDNN custom operations" not in stderr
    assert "absl::InitializeLog" not in stderr
    assert "oneDNN supports DT_INT64" not in stderr  # The tokenizer's ragged concat.
    assert not re.search(r"^I\d{4} ", stderr, flags=re.MULTILINE), stderr
    assert delegate not in stderr
    # Asked for, they stay.
    loud = _import_stderr(after=later, TF_CPP_MIN_LOG_LEVEL="0")
    assert "absl::InitializeLog" in loud  # At import.
    # TensorFlow turns oneDNN on only on some CPUs (Intel ones, not AMD EPYC).
    if _pywrap_util_port.IsMklEnabled():
        assert "oneDNN custom operations" in loud  # At import.
        assert "oneDNN supports DT_INT64 only on platforms with AVX-512" in loud
    assert re.search(r"^I\d{4} .*flatbuffer_export\.cc", loud, flags=re.MULTILINE)
    assert delegate in loud
    if "Could not find cuda drivers" in loud:  # As here.
        assert "failed call to cuInit" in loud
        assert "failed call to cuInit" not in stderr


def test_cuinit_error_is_kept_where_a_driver_was_found():
    error = (
        "E0000 00:00:1795756891.045933   28409 cuda_platform.cc:52] failed call "
        "to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR\n"
    )
    assert without_import_chatter(error) == error
    no_driver = (
        "I0000 00:00:1.5   28409 cudart_stub.cc:31] Could not find cuda drivers on "
        "your machine, GPU will not be used.\n"
    )
    assert without_import_chatter(no_driver + error) == ""


def test_import_passes_on_other_native_output():
    # A warning and an error written to fd 2 while TensorFlow loads.
    prelude = (
        "import os, sys\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow_text':\n"
        "            os.write(2, b'W0000 00:00:1.5  7 x.cc:1] a warning\\n')\n"
        "            os.write(2, b'E0000 00:00:1.5  7 x.cc:2] an error\\n')\n"
        "            os.write(2, b'I0000 00:00:1.5  7 x.cc:3] chatter\\n')\n"
        "sys.meta_path.insert(0, Hook())"
    )
    stderr = _import_stderr(prelude)
    assert "x.cc:1] a warning" in stderr
    assert "x.cc:2] an error" in stderr
    assert "chatter" not in stderr


def test_devices_can_still_be_configured_after_import():
    # Logical CPUs (`strategy.num_cpu_devices`) and GPU memory growth must be
    # set before TensorFlow's runtime starts: the import may run no op.
    code = (
        "import albert_tf, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(\n"
        "    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "print(len(tf.config.list_logical_devices('CPU')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"


def test_import_works_with_stderr_closed():
    code = "import albert_tf; print('imported')"
    result = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -c \"{code}\" 2>&-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "imported"


def test_import_after_tensorflow_still_registers_the_tf_text_ops():
    prelude = "import sys, tensorflow\nassert 'tensorflow_text' not in sys.modules"
    code = f"{prelude}\nimport albert_tf\nprint('tensorflow_text' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_chatter_filter_keeps_lines_that_only_look_alike():
    text = (
        "I0000 00:00:1795710659.166648   31540 port.cc:153] oneDNN on\n"
        "To enable the following instructions: AVX2 FMA, in other operations\n"
        "I0 is not a log line\n"
        "UserWarning: To enable the following instructions, see docs\n"
        "E0000 00:00:1.5   7 util.cc:131] oneDNN supports DT_INT64 only on platforms "
        "with AVX-512. Falling back to the default Eigen-based implementation if "
        "present.\n"
        "E0000 00:00:1.5   7 util.cc:131] oneDNN supports DT_INT64 only on platforms "
        "with AVX-512. Something else failed.\n"
    )
    assert without_import_chatter(text) == (
        "I0 is not a log line\nUserWarning: To enable the following instructions, "
        "see docs\nE0000 00:00:1.5   7 util.cc:131] oneDNN supports DT_INT64 only "
        "on platforms with AVX-512. Something else failed.\n"
    )


def test_a_tensorflow_error_is_one_line(monkeypatch, capsys):
    # What a full disk raises while TensorFlow writes a checkpoint or export.
    def full_disk(args):
        raise tf.errors.ResourceExhaustedError(
            None, None, "/out/ckpt_temp/part-0; No space left on device"
        )

    monkeypatch.setattr("albert_tf.serving.commands._inspect", full_disk)
    assert main(["inspect", "somewhere"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "albert-tf inspect: error: /out/ckpt_temp/part-0; No space left on device"
    )


SERVE = "serve --model-base-path b --model-name a"
INT_1 = "expected an integer of 1 or more"


@pytest.mark.parametrize(
    "command, message",
    [
        ("export m b --max-batch-size 0", f"--max-batch-size: {INT_1}, got 0"),
        ("export m b --batch-timeout-micros -5", "expected an integer of 0 or more"),
        ("export m b --version 0", f"--version: {INT_1}"),
        (f"{SERVE} --port 70000", "--port: expected a port"),
        (f"{SERVE} --max-batch-size 0", f"--max-batch-size: {INT_1}"),
        (f"{SERVE} --poll-seconds 0", "--poll-seconds: expected a number above 0"),
        ("tflite m o --min-agreement 1.5", "expected a fraction from 0 to 1, got 1.5"),
        ("tflite m o --max-accuracy-drop -5", "expected points from 0 to 100"),
        ("tflite m o --max-accuracy-drop nan", "expected points from 0 to 100"),
        ("tflite m o --calibration-size 0", f"--calibration-size: {INT_1}"),
        ("predict --server h:1 --wait -1 hi", "expected a number of 0 or more, got -1"),
        ("predict --server h:1 --timeout 0 hi", "--timeout: expected a number above 0"),
        ("evaluate m d --batch-size ten", f"--batch-size: {INT_1}, got 'ten'"),
        ("demo --steps 0", f"--steps: {INT_1}"),
    ],
)
def test_a_bad_number_is_refused_at_parsing_naming_the_option(command, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(command.split())
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    option = [word for word in command.split() if word.startswith("--")][-1]
    assert f"argument {option}: expected" in err and message in err


def test_a_log_level_set_by_the_user_is_kept():
    code = "import os, albert_tf\nprint(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.stdout.strip() == "3", result.stderr


@pytest.mark.parametrize(
    "parse, text, value",
    [
        (cli_types.port, "0", 0),
        (cli_types.port, "65535", 65535),
        (cli_types.positive_int, "1", 1),
        (cli_types.non_negative_int, "0", 0),
        (cli_types.non_negative_float, "0", 0.0),
        (cli_types.fraction, "0", 0.0),
        (cli_types.fraction, "1", 1.0),
        (cli_types.percentage_points, "100", 100.0),
        (cli_types.percentage_points, "0", 0.0),
    ],
)
def test_numbers_at_the_edge_of_their_range_are_accepted(parse, text, value):
    assert parse(text) == value


def test_tensorflow_op_errors_lose_their_graph_node_names():
    import tensorflow as tf

    from albert_tf.cli import op_error_message

    error = tf.errors.ResourceExhaustedError(
        None,
        None,
        "{{function_node __wrapped__SaveV2_dtypes_28_device_/job:localhost/replica:0"
        "/task:0/device:CPU:0}} out/variables.data; No space left on device "
        "[Op:SaveV2]",
    )
    assert op_error_message(error) == "out/variables.data; No space left on device"


def test_ctrl_c_while_commands_load_is_an_interrupt(monkeypatch, capsys):
    from albert_tf import cli

    def interrupted():  # Ctrl-C while the command modules import TensorFlow.
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        status = cli.main(["train", "--config", "x.yaml"])
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C while commands load escaped main() (a traceback)")
    assert status == 130
    assert capsys.readouterr().err == "albert-tf: interrupted\n"


def test_output_to_a_closed_pipe_ends_quietly():
    # `albert-tf ... | head` where head has exited before the output comes.
    process = subprocess.Popen(
        [sys.executable, "-m", "albert_tf.cli", "--version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=120) == 0, stderr
    assert "Broken pipe" not in stderr and "Traceback" not in stderr
