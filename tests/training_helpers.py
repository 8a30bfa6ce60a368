"""Helpers for the training tests: tiny labelled files and configs."""

import json
import os
import pathlib
import signal

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny.yaml"

POSITIVE = [
    "What an amazing movie, truly wonderful acting!",
    "The acting was good and the story was wonderful.",
    "A truly amazing and wonderful film.",
    "Good fun, the quick fox was amazing.",
]
NEGATIVE = [
    "A dull, boring and far too long film.",
    "The story was bad and the acting was dull.",
    "I forgot my homework, a boring and bad day.",
    "Far too long and too dull.",
]


# Two ways of computing one step (replicas, micro-batches) must give the
# same weights: static shapes give both the same rows, epsilon=1 makes
# Adam's update follow the gradient's size, and clipnorm=0.01 keeps
# clipping active, so a gradient summed twice or clipped in parts shows.
EXACT_STEP_OVERRIDES = {
    "training.steps": 6,
    "training.log_every_steps": 1,
    "data.dev": None,
    "strategy.static_shapes": True,
    "optimizer.epsilon": 1.0,
    "optimizer.learning_rate": 1.0,
    "optimizer.clipnorm": 0.01,
    "optimizer.warmup_steps": 0,
    "optimizer.weight_decay": 0.0,
}


def write_tiny_tsv(path, repeat=4):
    """A labelled TSV (header `sentence<TAB>label`, names) of 8 * repeat rows."""
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    lines = ["sentence\tlabel"] + [f"{t}\t{lb}" for t, lb in rows * repeat]
    pathlib.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def tiny_overrides(tmp_path, tiny_proto, **extra):
    """`--set` overrides pointing configs/tiny.yaml at tiny fixture files."""
    vocab = tmp_path / "tiny.spm"
    vocab.write_bytes(tiny_proto)
    train = write_tiny_tsv(tmp_path / "train.tsv")
    overrides = {
        "model.vocabulary": str(vocab),
        "data.train": train,
        "data.dev": train,
    }
    overrides.update(extra)
    return overrides


def set_args(overrides):
    args = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else json.dumps(value)  # JSON is YAML.
        args += ["--set", f"{key}={text}"]
    return args


def subprocess_env():
    env = dict(os.environ)
    env.update(
        TF_CPP_MIN_LOG_LEVEL="2",
        KERAS_BACKEND="tensorflow",
        PYTHONPATH=str(REPO),
        CUDA_VISIBLE_DEVICES="",
    )
    env.pop("TF_CONFIG", None)
    return env


def default_ctrl_c():
    """`preexec_fn` of a child that a test sends Ctrl-C: a test run started
    by a script's `cmd &` ignores SIGINT, and its children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
