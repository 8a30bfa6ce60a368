"""TFLite builds of ALBERT classifiers: size, latency, accuracy, agreement.

Run: `python -m benchmarks.tflite [--model runs/sst2_scratch/model.keras]`.

Part 1, ALBERT-base-sized classifier (random weights unless `--model`): file
size and median batch-1 latency (LiteRT interpreter, 2 threads, the longest
evaluation sentence, tokenization included) of the string-in build in every
quantization mode, with max |logit diff| and agreement vs the float Keras model.

Part 2, accuracy: a trained model is needed. Without `runs/sst2_scratch/model.keras`
(the training issue's output) a small ALBERT is trained from scratch for one
short epoch on SST-2 train; every mode is then scored on all 872 SST-2 dev
sentences (accuracy and agreement vs the float model).
"""

import argparse
import json
import logging
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from albert_tf.models import AlbertBackbone  # noqa: E402
from albert_tf.models import AlbertTextClassifier  # noqa: E402
from albert_tf.models import AlbertTextClassifierPreprocessor  # noqa: E402
from albert_tf.models import AlbertTokenizer  # noqa: E402
from albert_tf.models import load_classifier  # noqa: E402
from albert_tf.tflite import report  # noqa: E402
from albert_tf.training.config import DataConfig  # noqa: E402
from albert_tf.training.data_files import read_labelled_text  # noqa: E402
from benchmarks.common import REPO  # noqa: E402
from benchmarks.common import RESULTS_DIR  # noqa: E402
from benchmarks.common import SHARED_DATA as DATA  # noqa: E402
from benchmarks.common import albert_base_config  # noqa: E402
from benchmarks.common import cpu_int8_flags  # noqa: E402
from benchmarks.common import machine_description  # noqa: E402

TRAINED = REPO / "runs" / "sst2_scratch" / "model.keras"


def albert_classifier(sequence_length, **backbone_kwargs):
    tokenizer = AlbertTokenizer(proto=str(DATA / "albert" / "spiece.model"))
    backbone = AlbertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), **backbone_kwargs
    )
    preprocessor = AlbertTextClassifierPreprocessor(tokenizer, sequence_length)
    return AlbertTextClassifier(backbone, num_classes=2, preprocessor=preprocessor)


def albert_base_classifier(sequence_length):
    """ALBERT-base shapes (keras-hub `albert_base_en_uncased`), random weights."""
    config = albert_base_config()
    del config["vocabulary_size"]  # From the tokenizer.
    return albert_classifier(sequence_length, **config)


def train_small_classifier(texts, labels, sequence_length=64):
    """A 2-layer ALBERT trained from scratch for one short epoch (~1-2 min)."""
    classifier = albert_classifier(
        sequence_length,
        num_layers=2,
        num_heads=2,
        embedding_dim=64,
        hidden_dim=128,
        intermediate_dim=256,
        max_sequence_length=sequence_length,
    )
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3))
    classifier.fit(x=texts, y=labels, batch_size=64, epochs=1, verbose=2)
    return classifier


def section(title, rows, notes):
    return f"## {title}\n\n{notes}\n\n{report.format_report(rows)}\n"


def _int8_speed_caveat():
    flags = cpu_int8_flags()
    if flags is None or {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags):
        return ""
    return (
        "; this CPU has no int8 dot-product instructions (AVX-512 VNNI, "
        "AVX-VNNI, AMX), so LiteRT's int8 kernels gain little over float32 "
        "here; phones' ARM cores have them (`sdot`)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        help="size/latency model (default: ALBERT-base shapes, random weights)",
    )
    parser.add_argument(
        "--trained-model",
        default=str(TRAINED) if TRAINED.exists() else None,
        help="accuracy model (default: the configs/sst2_scratch.yaml run, if present)",
    )
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--calibration", type=int, default=50)
    parser.add_argument("--train-examples", type=int, default=20000)
    parser.add_argument("--output", default=str(RESULTS_DIR / "tflite.md"))
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    start = time.time()
    load_start = os.getloadavg()[0]
    tf.random.set_seed(0)
    dev = read_labelled_text(str(DATA / "sst2" / "dev.tsv"), DataConfig())
    train = read_labelled_text(str(DATA / "sst2" / "train.tsv"), DataConfig())
    dev_texts, dev_labels = dev.texts, np.array(dev.labels, dtype=int)
    train_texts, train_labels = train.texts, np.array(train.labels, dtype=int)
    calibration = train_texts[-args.calibration :]  # Not used for training below.

    # Part 1: size and latency at ALBERT-base size.
    if args.model:
        base = load_classifier(args.model)
        base_source = f"trained model `{args.model}`"
    else:
        base = albert_base_classifier(args.sequence_length)
        base_source = (
            "ALBERT-base shapes (12 layers, hidden 768, 11.7M parameters), "
            "random weights"
        )
    rows = report.compare_builds(
        base, dev_texts[: args.examples], None, "text", calibration_texts=calibration
    )
    by_mode = {r["mode"]: r for r in rows}
    ratios = {
        f"TFLite {mode} {what} vs float32": by_mode[mode][key] / by_mode["none"][key]
        for mode in ("dynamic", "int8")
        if mode in by_mode
        for what, key in (("size", "size_bytes"), ("latency", "latency_ms"))
    }
    part1_seconds = time.time() - start
    part1 = section(
        "Size and batch-1 latency, ALBERT-base-sized",
        rows,
        f"Model: {base_source}; sequence length {base.preprocessor.sequence_length}; "
        f"agreement/diff on the first {args.examples} SST-2 dev sentences (random "
        "weights give near-constant predictions, so agreement here says little). "
        f"Part time: {part1_seconds:.0f} s.",
    )

    # Part 2: accuracy of each mode with a trained model.
    start2 = time.time()
    if args.trained_model:
        small = load_classifier(args.trained_model)
        small_source = f"the trained model `{os.path.relpath(args.trained_model)}`"
        if os.path.abspath(args.trained_model) == str(TRAINED):
            small_source += " (from `configs/sst2_scratch.yaml`)"
        time_note = "loaded, not trained"
    else:
        time_note = "training included"
        n = args.train_examples
        small = train_small_classifier(train_texts[:n], train_labels[:n])
        small_source = (
            f"2-layer ALBERT (hidden 128, sequence length 64) trained from scratch for "
            f"one epoch on the first {n} SST-2 train sentences (Adam 1e-3, batch 64)"
        )
    rows = report.compare_builds(
        small, dev_texts, dev_labels, "text", calibration_texts=calibration
    )
    part2 = section(
        "Accuracy and agreement on SST-2 dev (872 sentences)",
        rows,
        f"Model: {small_source}. Part time ({time_note}): "
        f"{time.time() - start2:.0f} s.",
    )
    accuracy = {r["mode"]: r["accuracy"] for r in rows}
    drop = {mode: accuracy["none"] - a for mode, a in accuracy.items()}
    size, latency = (
        ratios["TFLite dynamic size vs float32"],
        ratios["TFLite dynamic latency vs float32"],
    )
    goals = (
        "## Goals (issue #6)\n\n"
        "- dynamic-int8 size <= 27% of float32: "
        f"{'met' if size <= 0.27 else 'NOT met'} "
        f"({size:.1%})\n"
        f"- dynamic-int8 batch-1 latency <= 0.5x float32: "
        f"{'met' if latency <= 0.5 else 'NOT met'} ({latency:.2f}x)"
        f"{_int8_speed_caveat()}\n"
        f"- dynamic-int8 accuracy within 1 point of float: "
        f"{'met' if drop['dynamic'] <= 0.01 else 'NOT met'} "
        f"({100 * drop['dynamic']:+.2f} points)\n"
        "- other modes, accuracy drop vs float "
        "(the `--verify` gate refuses > 1 point): "
        + ", ".join(f"{m} {100 * d:+.2f}" for m, d in drop.items() if m != "none")
        + "\n"
    )
    text = (
        "# TFLite builds (string-in, tokenizer inside)\n\n"
        "Command: `python -m benchmarks.tflite` "
        f"({time.time() - start:.0f} s in all).\n"
        f"Machine: {machine_description()}. 1-minute load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (above "
        "2 means other processes shared the cores: absolute latencies are then "
        "noisy; ratios come from the same run).\n"
        f"int8: calibrated on the last {args.calibration} SST-2 train sentences "
        "(through the model's own tokenizer). Latency: median of 20 batch-1 calls, "
        "LiteRT interpreter, 2 threads, tokenization included.\n\n"
        + part1
        + "\n"
        + part2
        + "\n"
        + goals
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    (RESULTS_DIR / "tflite.json").write_text(
        json.dumps(
            {"command": "python -m benchmarks.tflite", "ratios": ratios}, indent=2
        )
    )
    print(text)


if __name__ == "__main__":
    main()
