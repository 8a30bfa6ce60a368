"""Shared fixtures: quiet TensorFlow, the shared reference data, tiny models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPIECE_MODEL = SHARED_DATA / "albert" / "spiece.model"
SST2_DEV = SHARED_DATA / "sst2" / "dev.tsv"
SST2_TRAIN = SHARED_DATA / "sst2" / "train.tsv"


@pytest.fixture(scope="session")
def spiece_model_path():
    """The real ALBERT SentencePiece model from ../shared/data (skips if absent)."""
    if not SPIECE_MODEL.is_file():
        pytest.skip(f"shared reference data not found: {SPIECE_MODEL} is missing")
    return str(SPIECE_MODEL)


@pytest.fixture(scope="session")
def sst2_dev_sentences():
    """The 872 SST-2 dev sentences (skips if ../shared/data is absent)."""
    if not SST2_DEV.is_file():
        pytest.skip(f"shared reference data not found: {SST2_DEV} is missing")
    lines = SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines]


@pytest.fixture(scope="session")
def tiny_proto(tmp_path_factory):
    """A small SentencePiece model trained on the fly, with ALBERT's special tokens."""
    from tests.helpers import train_tiny_sentencepiece

    return train_tiny_sentencepiece(tmp_path_factory.mktemp("spm"))


# The files that take longest, longest first (CI durations). With `make test`
# (`--dist loadfile --no-loadscope-reorder`) each xdist worker takes whole
# files in this order, so the short files fill in at the end instead of one
# worker running a long file alone while the other idles.
_LONGEST_FIRST = (
    "test_training.py",
    "test_training_distributed.py",
    "test_serving_server.py",
    "test_presets.py",
    "test_serving_export.py",
    "test_demo.py",
    "test_tflite.py",
    "test_keras_hub_examples.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
