"""The `albert-tf` entry point itself."""

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
