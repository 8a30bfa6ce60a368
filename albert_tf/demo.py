"""`albert-tf demo`: the whole product in one command, on embedded data.

Trains a small ALBERT classifier (a SentencePiece vocabulary is trained on
the training texts first, unless one is given), evaluates it, exports a
versioned SavedModel for TF Serving, serves it on a free 127.0.0.1 port,
queries it with Predict and Classify, builds a dynamic-range TFLite file,
runs it, and prints one summary in which every artifact's predictions are
compared with the Keras model's.
"""

import io
import json
import pathlib
import shlex
import statistics
import sys
import time

from albert_tf import cli_types

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
DEMO_TRAIN = DATA_DIR / "demo_train.tsv"
DEMO_DEV = DATA_DIR / "demo_dev.tsv"
_COLUMN_KEYS = ("text_column", "text_pair_column", "label_column", "format", "header")
EXAMPLES = [
    "An honest, moving and very funny film.",
    "A dull mess that drags in every scene.",
    "The acting was wonderful but the ending falls apart.",
]
MODEL_NAME = "albert"


def register(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="train, evaluate, export, serve, query and build TFLite in one go",
        description=__doc__,
    )
    parser.add_argument(
        "--data",
        help="labelled training file: TSV (sentence<TAB>label, with header), "
        "or CSV/JSONL with sentence and label columns; default: the embedded "
        "demo data",
    )
    parser.add_argument(
        "--dev",
        help="labelled dev file, read like --data (default: embedded, or --data)",
    )
    parser.add_argument(
        "--vocabulary",
        help="SentencePiece model (e.g. ../shared/data/albert/spiece.model); "
        "default: trained on the training texts at run time",
    )
    parser.add_argument("--output", default="demo_output", help="where artifacts go")
    parser.add_argument(
        "--steps", type=cli_types.positive_int, default=300, help="training steps"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training config key, e.g. --set model.sequence_length=64",
    )
    parser.set_defaults(func=run)


def _read(path, skip_bad_rows):
    """Texts and raw labels of a demo data file, checked row by row."""
    from albert_tf.training.config import DataConfig
    from albert_tf.training.data_files import read_labelled_text

    data = read_labelled_text(
        str(path),
        DataConfig(skip_bad_rows=skip_bad_rows),
        column_hint="the demo reads `sentence` and `label` columns; for others, "
        "use `albert-tf train`, `evaluate` and `predict`",
        skip_option="--set data.skip_bad_rows=true",
    )
    return data.texts, data.labels


def train_vocabulary(texts, path, vocab_size=600):
    """Trains a SentencePiece model with ALBERT's special tokens on `texts`.

    The texts are normalised the way `AlbertTokenizer` will see them
    (lowercase, accents stripped), so the pieces match at tokenization time.
    """
    import sentencepiece as spm
    import tensorflow as tf

    from albert_tf.models.albert.albert_text_preprocessing import preprocess_text

    normalised = [t.decode() for t in preprocess_text(tf.constant(texts)).numpy()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(normalised),
        model_writer=model,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type="unigram",
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        user_defined_symbols="[CLS],[SEP],[MASK]",
        minloglevel=2,
    )
    tmp = pathlib.Path(str(path) + ".tmp")
    tmp.write_bytes(model.getvalue())
    tmp.replace(path)
    return str(path)


def demo_config(train, dev, vocabulary, output_dir, steps, label_names):
    """The demo's training config: a small ALBERT that trains in a few minutes."""
    return {
        "seed": 42,
        "output_dir": str(output_dir),
        "model": {
            "vocabulary": str(vocabulary),
            "sequence_length": 32,
            "dropout": 0.1,
            "backbone": {
                "num_layers": 2,
                "num_heads": 2,
                "embedding_dim": 32,
                "hidden_dim": 64,
                "intermediate_dim": 128,
                "max_sequence_length": 32,
            },
        },
        "data": {
            "train": str(train),
            "dev": str(dev),
            "label_names": label_names,
            "text_column": "sentence",
            "label_column": "label",
        },
        "optimizer": {"learning_rate": 2e-3, "warmup_ratio": 0.1},
        "training": {
            "global_batch_size": 16,
            "steps": steps,
            "log_every_steps": 50,
            "eval_every_steps": max(steps // 3, 1),
            "checkpoint_every_steps": max(steps // 3, 1),
        },
        "strategy": {"name": "default"},
    }


def check_same_demo(config_path, config):
    """Refuses an output folder that holds a demo of other data or settings.

    Rerunning the same demo resumes its run; another one would overwrite the
    vocabulary and config of the run that is there, then fail to resume it.
    """
    import yaml

    from albert_tf.training.config import dotted

    if not config_path.is_file():
        return
    old = dotted(yaml.safe_load(config_path.read_text()) or {})
    new = dotted(config)
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            raise ValueError(
                f"'{config_path.parent}' holds a demo of other settings ({key}: "
                f"{old.get(key)!r} there, {new.get(key)!r} now); pass --output "
                f"NEW_FOLDER, or delete '{config_path.parent}' to start over"
            )


def override_arguments(overrides):
    """`--set` arguments that `parse_overrides` reads back as `overrides`."""
    return [
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in overrides.items()
    ]


def _median_ms(fn, runs=10):
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _size(path):
    path = pathlib.Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _step(number, text):
    print(f"\n[{number}/6] {text}", flush=True)


def run_demo(
    data=None,
    dev=None,
    vocabulary=None,
    output="demo_output",
    steps=300,
    overrides=None,
):
    """Runs the demo; returns a dict of the summary figures and paths."""
    columns = sorted(
        key for key in overrides or {} if key.split(".")[-1] in _COLUMN_KEYS
    )
    if columns:
        # Steps 2-5 read `sentence` and `label` columns and send single texts.
        raise ValueError(
            f"--set {columns[0]}: the demo reads `sentence` and `label` columns "
            "of single texts; for other columns or text pairs, use `albert-tf "
            "train`, `evaluate` and `predict`."
        )
    import numpy as np
    import yaml

    from albert_tf.models import class_names
    from albert_tf.models import load_classifier
    from albert_tf.serving.client import ServingClient
    from albert_tf.serving.dev_server import DevServer
    from albert_tf.serving.export import export_classifier
    from albert_tf.tflite import TFLiteClassifier
    from albert_tf.tflite import build_tflite
    from albert_tf.tflite import dynamic
    from albert_tf.training import load_config
    from albert_tf.training import train
    from albert_tf.training.data_files import LabelVocabulary

    output = pathlib.Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    train_path = pathlib.Path(data or DEMO_TRAIN).resolve()
    dev_path = pathlib.Path(dev or (DEMO_DEV if data is None else data)).resolve()
    for path in (train_path, dev_path):
        if not path.is_file():
            raise FileNotFoundError(f"Data file not found: '{path}'.")
    skip_bad_rows = bool((overrides or {}).get("data.skip_bad_rows"))
    train_texts, train_labels = _read(train_path, skip_bad_rows)
    dev_texts, dev_labels = _read(dev_path, skip_bad_rows)
    label_names = LabelVocabulary.from_labels(train_labels).names

    config = demo_config(
        train_path,
        dev_path,
        pathlib.Path(vocabulary or output / "vocabulary.spm").resolve(),
        output / "run",
        steps,
        label_names,
    )
    config_path = output / "demo.yaml"
    check_same_demo(config_path, config)  # Before anything there changes.

    _step(1, f"Training on {train_path.name} ({len(train_texts)} rows)")
    if vocabulary is None:
        vocabulary = train_vocabulary(train_texts, output / "vocabulary.spm")
        print(f"Trained a SentencePiece vocabulary: {vocabulary}")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    train_config = load_config(str(config_path), overrides=overrides or {})
    metrics = train(train_config)
    model_path = pathlib.Path(train_config.output_dir) / "model.keras"

    _step(2, f"Evaluating {model_path}")
    classifier = load_classifier(str(model_path))
    names = class_names(classifier)
    keras_logits = classifier.predict(dev_texts, batch_size=64, verbose=0)
    accuracy = float(
        np.mean(
            [
                names[i] == label
                for i, label in zip(keras_logits.argmax(-1), dev_labels, strict=True)
            ]
        )
    )
    print(f"Dev accuracy: {accuracy:.1%} on {len(dev_texts)} rows")
    example_logits = classifier.predict(EXAMPLES, verbose=0)
    keras_labels = [names[i] for i in example_logits.argmax(-1)]

    _step(3, "Exporting a versioned SavedModel for TF Serving")
    export_base = output / "export" / MODEL_NAME
    version_dir = export_classifier(classifier, str(export_base), model_name=MODEL_NAME)
    print(f"Wrote {version_dir}")

    _step(4, "Serving it over gRPC on 127.0.0.1 and sending Predict + Classify")
    server = DevServer(MODEL_NAME, str(export_base), port=0).start()
    try:
        target = f"127.0.0.1:{server.port}"
        with ServingClient(target, MODEL_NAME, timeout=30.0) as client:
            served = client.predict(EXAMPLES)
            classified = client.classify(EXAMPLES)
            grpc_ms = _median_ms(lambda: client.predict(EXAMPLES[:1]))
    finally:
        server.stop()
    grpc_labels = [
        v.decode() if isinstance(v, bytes) else str(v) for v in served["label"]
    ]
    # Classify answers every class with its score; its top class must be Predict's.
    top = np.asarray(classified["scores"]).argmax(-1)
    classify_labels = [
        c.decode() if isinstance(c, bytes) else str(c)
        for c in (row[i] for row, i in zip(classified["classes"], top, strict=True))
    ]
    grpc_diff = float(np.abs(np.asarray(served["logits"]) - example_logits).max())

    _step(5, "Building a dynamic-range quantized TFLite model and running it")
    tflite_path = output / "albert_dynamic.tflite"
    build_tflite(classifier, str(tflite_path), dynamic())
    tflite_model = TFLiteClassifier(str(tflite_path), num_threads=2)
    tflite_out = tflite_model.predict(EXAMPLES)
    tflite_labels = list(tflite_out["label"])  # From the labels.txt sidecar.
    tflite_diff = float(np.abs(np.asarray(tflite_out["logits"]) - example_logits).max())
    tflite_ms = _median_ms(lambda: tflite_model.predict(EXAMPLES[:1]))
    keras_ms = _median_ms(lambda: classifier.predict_on_batch(EXAMPLES[:1]))

    _step(6, "Summary")
    summary = {
        "dev_accuracy": accuracy,
        "train_metrics": metrics,
        "examples": [
            {"text": t, "keras": k, "grpc": g, "grpc_classify": c, "tflite": f}
            for t, k, g, c, f in zip(
                EXAMPLES,
                keras_labels,
                grpc_labels,
                classify_labels,
                tflite_labels,
                strict=True,
            )
        ],
        "grpc_max_abs_logit_diff": grpc_diff,
        "tflite_max_abs_logit_diff": tflite_diff,
        "agree": keras_labels == grpc_labels == classify_labels == tflite_labels,
        "overrides": override_arguments(overrides or {}),
        "latency_ms_batch1": {"keras": keras_ms, "grpc": grpc_ms, "tflite": tflite_ms},
        "sizes_bytes": {
            "model.keras": _size(model_path),
            "savedmodel": _size(version_dir),
            "tflite": _size(tflite_path),
        },
        "paths": {
            "config": str(config_path),
            "model": str(model_path),
            "dev": str(dev_path),
            "export": str(export_base),
            "tflite": str(tflite_path),
        },
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(format_summary(summary))
    return summary


def format_summary(summary):
    q = shlex.quote
    paths, sizes, ms = (
        summary["paths"],
        summary["sizes_bytes"],
        summary["latency_ms_batch1"],
    )
    lines = [
        f"Dev accuracy: {summary['dev_accuracy']:.1%}",
        "",
        f"{'text':<55} {'Keras':<10} {'Predict':<10} {'Classify':<10} {'TFLite':<10}",
    ]
    for row in summary["examples"]:
        lines.append(
            f"{row['text'][:55]:<55} {row['keras']:<10} {row['grpc']:<10} "
            f"{row['grpc_classify']:<10} {row['tflite']:<10}"
        )
    lines += [
        f"All agree: {'yes' if summary['agree'] else 'NO'}. Max |logit| "
        f"difference from Keras: SavedModel over gRPC "
        f"{summary['grpc_max_abs_logit_diff']:.1e}, TFLite dynamic int8 "
        f"{summary['tflite_max_abs_logit_diff']:.1e}",
        "",
        f"Sizes: model.keras {sizes['model.keras'] / 1e6:.2f} MB, SavedModel "
        f"{sizes['savedmodel'] / 1e6:.2f} MB, TFLite (dynamic int8) "
        f"{sizes['tflite'] / 1e6:.2f} MB",
        f"Batch-1 latency (median): Keras {ms['keras']:.1f} ms, "
        f"gRPC {ms['grpc']:.1f} ms, "
        f"TFLite {ms['tflite']:.1f} ms",
        "",
        "Files:",
        f"  training config  {paths['config']}",
        f"  Keras model      {paths['model']}",
        f"  TF Serving base  {paths['export']}",
        f"  TFLite           {paths['tflite']}",
        "",
        "Each step by hand:",
        f"  albert-tf train --config {q(paths['config'])}"
        + "".join(f" --set {q(item)}" for item in summary["overrides"]),
        f"  albert-tf evaluate {q(paths['model'])} {q(paths['dev'])}",
        f"  albert-tf predict {q(paths['model'])} 'A warm, funny film.'",
        f"  albert-tf export {q(paths['model'])} {q(paths['export'])}",
        f"  albert-tf serve --model-base-path {q(paths['export'])} "
        f"--model-name {MODEL_NAME} --port 8500",
        f"  albert-tf predict --server 127.0.0.1:8500 --model-name {MODEL_NAME} "
        "--wait 60 'A warm, funny film.'",
        f"  albert-tf tflite {q(paths['model'])} model.tflite --quantize dynamic "
        f"--verify {q(paths['dev'])}",
        "On your own data (TSV, CSV or JSONL with sentence and label columns):",
        "  albert-tf demo --data train.tsv --dev dev.tsv --output my_demo "
        "[--vocabulary ../shared/data/albert/spiece.model]",
    ]
    return "\n".join(lines)


def run(args):
    from albert_tf.training.config import parse_overrides

    summary = run_demo(
        data=args.data,
        dev=args.dev,
        vocabulary=args.vocabulary,
        output=args.output,
        steps=args.steps,
        overrides=parse_overrides(args.set),
    )
    return 0 if summary["agree"] else 1


if __name__ == "__main__":
    from albert_tf.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
