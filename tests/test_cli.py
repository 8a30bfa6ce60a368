"""The `albert-tf` entry point itself."""

import importlib
import tomllib
from importlib.metadata import version

import pytest

import albert_tf
from albert_tf.cli import main
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
