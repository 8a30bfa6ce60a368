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
