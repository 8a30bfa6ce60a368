"""The `train`, `evaluate` and `predict` sub-commands."""

import json
import os
import sys

import numpy as np

from albert_tf import cli_types

MODEL_HELP = (
    "a .keras model (e.g. OUTPUT/model.keras) or a preset: a folder, hf://, "
    "kaggle:// or a built-in id"
)


def register(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune a classifier from a YAML config (resumable)",
        description="Train from a YAML config. Rerunning the same command "
        "resumes from the newest checkpoint in the output directory.",
    )
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--output", help="output directory (overrides output_dir)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.steps=100 (repeatable)",
    )
    parser.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip and count bad data rows instead of failing",
    )
    parser.add_argument("--tpu", help="TPU VM name, or local (selects TPUStrategy)")
    parser.set_defaults(func=run_train)

    parser = subparsers.add_parser(
        "evaluate", help="accuracy, per-class P/R/F1 and confusion matrix on a file"
    )
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("data", help="labelled TSV/CSV/JSONL/TFRecord file")
    add_column_arguments(parser)
    parser.add_argument("--batch-size", type=cli_types.positive_int, default=64)
    parser.add_argument("--output", help="also write the report as JSON here")
    parser.add_argument("--plot", help="also write the confusion matrix PNG here")
    parser.add_argument(
        "--predictions",
        metavar="PATH.jsonl",
        help="also write one JSON line per row: line, text, gold and predicted "
        "label, its probability, correct",
    )
    parser.set_defaults(func=run_evaluate)

    parser = subparsers.add_parser(
        "predict",
        help="classify texts with a local model or a TF Serving server",
        description="Classifies texts (arguments, a file, or standard input) "
        "with a local model, or with a served one over gRPC (--server): the "
        "label and class probabilities of each, as a table or JSON lines.",
        usage="albert-tf predict MODEL [TEXT ...] [--file F] [--format table|jsonl]\n"
        "       albert-tf predict --server HOST:PORT --model-name NAME [TEXT ...] "
        "[--file F] [--wait S] [--timeout S]",
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="MODEL TEXT",
        help=f"without --server: MODEL, {MODEL_HELP}; then texts",
    )
    parser.add_argument(
        "--file",
        help="texts to classify: one per line (- reads standard input), or a "
        "TSV/CSV/JSONL/TFRecord file read with --text-column",
    )
    add_column_arguments(parser)
    parser.add_argument("--format", choices=("table", "jsonl"), default="table")
    parser.add_argument(
        "--batch-size",
        type=cli_types.positive_int,
        help="texts per batch (default: 64 locally, 32 per request with --server)",
    )
    parser.add_argument("--server", help="TF Serving gRPC address HOST:PORT")
    parser.add_argument("--model-name", default="albert", help="served model name")
    parser.add_argument(
        "--timeout",
        type=cli_types.positive_float,
        default=30.0,
        help="gRPC deadline in seconds",
    )
    parser.add_argument(
        "--wait",
        type=cli_types.non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="with --server: wait up to this long for a server that is still "
        "starting (it listens once its model is loaded)",
    )
    parser.set_defaults(func=run_predict)


def add_column_arguments(parser):
    """The options that say how to read a labelled data file (also `tflite`)."""
    note = "; default: the training config.yaml beside the model, else "
    parser.add_argument("--text-column", help=f"column of the text{note}'sentence'")
    parser.add_argument(
        "--text-pair-column",
        help=f"column of the second text, for models trained on pairs{note}none",
    )
    parser.add_argument("--label-column", help=f"column of the label{note}'label'")
    parser.add_argument(
        "--data-format",
        default="auto",
        choices=("auto", "tsv", "csv", "jsonl", "tfrecord"),
    )
    parser.add_argument(
        "--no-header",
        action="store_true",
        help="TSV/CSV without a header: columns are 0-based indices",
    )
    parser.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip and count bad data rows instead of failing",
    )


def _training_columns(model_path):
    """The data columns of the run that wrote `model_path`, if its config is there."""
    if model_path is None:
        return {}
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.yaml")
    if not os.path.isfile(path):
        return {}
    import yaml

    with open(path, encoding="utf-8") as f:
        data = (yaml.safe_load(f) or {}).get("data") or {}
    return {
        key: data[key]
        for key in ("text_column", "text_pair_column", "label_column")
        if data.get(key) is not None
    }


# Ends the message about a column missing from a file read with these options.
COLUMN_HINT = (
    "name the columns with --text-column, --text-pair-column, --label-column, "
    "or pass --no-header if the file has no header row"
)


def data_config_from_args(args, model_path=None):
    """The `DataConfig` that `add_column_arguments` options describe.

    Args:
        args: parsed arguments. Columns left unset are filled in (on `args`,
            so later messages show them) from the `config.yaml` beside
            `model_path`, else with the GLUE names `sentence` and `label`.
        model_path: str or `None`. A trained `.keras` file.

    Returns:
        `albert_tf.training.config.DataConfig`.
    """
    from albert_tf.training.config import DataConfig

    trained = _training_columns(model_path)
    if args.text_column is None:
        args.text_column = trained.get("text_column", "sentence")
        if isinstance(args.text_column, int):  # Trained on a headerless file.
            args.no_header = True
    if args.text_pair_column is None:
        args.text_pair_column = trained.get("text_pair_column")
    if args.label_column is None:
        args.label_column = trained.get("label_column", "label")

    def column(value, flag):
        if value is None or not args.no_header:
            return value
        try:
            index = int(value)
            if index < 0:
                raise ValueError
            return index
        except ValueError:
            raise ValueError(
                f"with --no-header, {flag} must be a 0-based column index; got "
                f"{value!r} (e.g. --text-column 0 --label-column 1)"
            ) from None

    return DataConfig(
        format=args.data_format,
        header=not args.no_header,
        text_column=column(args.text_column, "--text-column"),
        text_pair_column=column(args.text_pair_column, "--text-pair-column"),
        label_column=column(args.label_column, "--label-column"),
        skip_bad_rows=args.skip_bad_rows,
    )


def run_train(args):
    from albert_tf.training.checkpoints import latest_checkpoint_step
    from albert_tf.training.config import load_config
    from albert_tf.training.config import parse_overrides
    from albert_tf.training.trainer import Trainer

    overrides = parse_overrides(args.set)
    if args.skip_bad_rows:
        overrides["data.skip_bad_rows"] = True
    if args.tpu:
        overrides["strategy.tpu"] = args.tpu
        overrides["strategy.name"] = "tpu"
    config = load_config(args.config, overrides=overrides)
    trainer = Trainer(config, output_dir=args.output)
    try:
        result = trainer.train()
    except KeyboardInterrupt:
        step = latest_checkpoint_step(os.path.join(trainer.output_dir, "checkpoints"))
        print(
            f"rerun the same command to resume from the checkpoint at step {step}"
            if step
            else "no checkpoint yet: a rerun starts from the beginning",
            file=sys.stderr,
        )
        raise
    best = result["best"]
    model_path = f"{trainer.output_dir}/model.keras"
    if not trainer.is_chief:
        model_path += " (the chief worker writes it)"
    steps = f"{result['steps']} steps"
    if result.get("stopped_early"):  # Absent from runs finished before it existed.
        steps = f"{result['steps']} of {result['total_steps']} steps (stopped early)"
    summary = f"trained {steps}; model: {model_path}"
    if best:
        summary += (
            f"; best dev {result['best_metric']} "
            f"{best[result['best_metric']]:.4f} at step {best['step']}"
        )
    print(summary)
    return 0


def run_evaluate(args):
    from albert_tf.atomic_file import ensure_writable
    from albert_tf.models import class_names
    from albert_tf.training import data_files
    from albert_tf.training import evaluation
    from albert_tf.training import metrics as metrics_lib

    for path in (args.output, args.predictions, args.plot):
        if path:  # Before the evaluation, not after it.
            ensure_writable(path)
    model = evaluation.load_text_classifier(args.model)
    label_names = class_names(model)
    data = data_files.read_labelled_text(
        args.data,
        data_config_from_args(args, args.model),
        data_files.LabelVocabulary(label_names),
        column_hint=COLUMN_HINT,
        format_option="--data-format",
    )
    _check_pairs(model, args.model, data.text_pairs is not None, from_file=True)
    outputs = evaluation.model_outputs(model, data, args.batch_size, verbose=1)
    report = evaluation.report_from_outputs(
        outputs,
        data.labels,
        label_names,
        from_logits=not model.returns_probabilities,
    )
    report["skipped_rows"] = data.skipped
    print(metrics_lib.format_report(report, label_names))
    if args.output:
        metrics_lib.write_json_atomic(args.output, report)
    if args.predictions:
        _, probabilities = evaluation.logits_and_probabilities(model, outputs)
        _write_row_predictions(args.predictions, data, probabilities, label_names)
    if args.plot:
        metrics_lib.plot_confusion_matrix(
            report["confusion_matrix"],
            label_names,
            args.plot,
            title=f"Confusion matrix: {os.path.basename(args.data)}",
        )
    return 0


def _write_row_predictions(path, data, probabilities, label_names):
    """One JSON line per row of `data`, in file order (bad rows skipped);
    `line` is the row's line in the file (record number for TFRecord)."""
    from albert_tf.atomic_file import write_text

    lines = []
    for i, text in enumerate(data.texts):
        predicted = int(probabilities[i].argmax())
        pair = {} if data.text_pairs is None else {"text_pair": data.text_pairs[i]}
        row = {
            "line": data.line_numbers[i],
            "text": text,
            **pair,
            "gold": label_names[data.labels[i]],
            "predicted": label_names[predicted],
            "probability": float(probabilities[i, predicted]),
            "correct": predicted == data.labels[i],
        }
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    write_text(path, "".join(lines))


def _plain_lines(source, name, skip_blank):
    """One text per line of UTF-8 text (a path, or bytes read from a pipe),
    with the line numbers; a blank line inside would shift every later output."""
    from albert_tf.training.data_files import numbered_lines

    rows = []
    for number, text, error in numbered_lines(source, blank=True):
        if error:
            raise ValueError(f"{name}:line {number}: {error}")
        rows.append((number, text))
    while rows and not rows[-1][1].strip():
        rows.pop()  # Blank lines at the end shift nothing.
    blank = [number for number, text in rows if not text.strip()]
    if blank and not skip_blank:
        raise ValueError(
            f"{name}:line {blank[0]}: empty text (use --skip-bad-rows to skip "
            "blank lines; outputs then no longer line up with input lines)"
        )
    if blank:
        print(f"{name}: skipped {len(blank)} blank line(s)", file=sys.stderr)
    rows = [(number, text) for number, text in rows if text.strip()]
    return [text for _, text in rows], [number for number, _ in rows]


def _read_by_columns(args):
    """Whether `predict --file` reads by columns (TSV/CSV/...), not by lines."""
    from albert_tf.training.data_files import FORMATS

    if args.data_format != "auto":
        return True
    return os.path.splitext(args.file)[1].lower() in FORMATS


# `predict --file` options that only a file read by columns can use.
_COLUMN_OPTIONS = {
    "text_column": "--text-column",
    "text_pair_column": "--text-pair-column",
    "label_column": "--label-column",
    "no_header": "--no-header",
}


def _read_texts(args, model_path):
    """`(texts, pairs or None, line numbers)` for `predict --file`."""
    from albert_tf.training import data_files

    if _read_by_columns(args):
        if args.file == "-":
            raise ValueError(
                "--file - reads one text per line; for a file with columns "
                "(--data-format), give its path"
            )
        data = data_files.read_labelled_text(
            args.file,
            data_config_from_args(args, model_path),
            with_labels=False,
            column_hint=COLUMN_HINT,
            format_option="--data-format",
        )
        return data.texts, data.text_pairs, data.line_numbers
    given = [flag for key, flag in _COLUMN_OPTIONS.items() if getattr(args, key)]
    if given:
        raise ValueError(
            f"{given[0]} is for files with columns, but {args.file} is read as "
            "plain text, one text per line (by its extension); add --data-format "
            "tsv, csv, jsonl or tfrecord"
        )
    if args.file == "-":
        stdin = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else None
        if stdin is None:  # Replaced by a text stream (tests, notebooks).
            stdin = sys.stdin.read().encode("utf-8")
        texts, lines = _plain_lines(stdin, "<stdin>", args.skip_bad_rows)
    elif not os.path.isfile(args.file):
        raise FileNotFoundError(f"text file not found: '{args.file}'")
    else:
        texts, lines = _plain_lines(args.file, args.file, args.skip_bad_rows)
    return texts, None, lines


def format_predictions(texts, outputs, fmt="table", pairs=None, lines=None):
    """Formats `{logits, probabilities, class_id, label}` rows for printing.

    Args:
        texts: list of str. The inputs, in order.
        outputs: dict of numpy arrays (a local model's or `ServingClient`'s).
        fmt: `"table"` or `"jsonl"`.
        pairs: list of str, the second text of each pair, or `None`.
        lines: list of int, each text's line in its file (JSONL's `line`,
            as in `evaluate --predictions`), or `None`.

    Returns:
        str.
    """
    labels = [
        v.decode("utf-8") if isinstance(v, bytes) else str(v)
        for v in np.asarray(outputs["label"]).reshape(-1)
    ]
    class_ids = np.asarray(outputs["class_id"]).reshape(-1)
    probabilities = np.asarray(outputs["probabilities"])
    logits = np.asarray(outputs["logits"])
    rows = []
    if fmt == "jsonl":
        for i, text in enumerate(texts):
            line = {} if lines is None else {"line": lines[i]}
            pair = {} if pairs is None else {"text_pair": pairs[i]}
            rows.append(
                json.dumps(
                    {
                        **line,
                        "text": text,
                        **pair,
                        "label": labels[i],
                        "class_id": int(class_ids[i]),
                        "probability": float(probabilities[i, class_ids[i]]),
                        "probabilities": [float(p) for p in probabilities[i]],
                        "logits": [float(v) for v in logits[i]],
                    },
                    ensure_ascii=False,
                )
            )
        return "\n".join(rows)
    width = max([len(label) for label in labels] + [5])
    rows.append(f"{'label':<{width}}  {'prob':>6}  text")
    for i, text in enumerate(texts):
        if pairs is not None:
            text = f"{text} | {pairs[i]}"
        text = " ".join(text.split())  # A newline would break the table's row.
        shown = text if len(text) <= 70 else text[:67] + "..."
        rows.append(
            f"{labels[i]:<{width}}  {probabilities[i, class_ids[i]]:6.4f}  {shown}"
        )
    return "\n".join(rows)


def _check_pairs(model, model_path, have_pairs, from_file):
    """Refuses single texts for a pair model and pairs for a single-text one.

    `from_file`: the texts come from a file read by columns (TSV/CSV/...).
    """
    takes_pairs = getattr(model.preprocessor, "text_pairs", None)
    if takes_pairs is None or bool(takes_pairs) == have_pairs:
        return
    if takes_pairs:
        how = (
            "name the second text's column with --text-pair-column"
            if from_file
            else "give them in a TSV/CSV/JSONL file: --file F --text-column A "
            "--text-pair-column B"
        )
        raise ValueError(f"{model_path} was trained on text pairs; {how}")
    raise ValueError(
        f"{model_path} was trained on single texts; drop --text-pair-column"
    )


def run_predict(args):
    inputs = list(args.inputs)
    model_path = None
    if args.server is None:
        if not inputs:
            raise ValueError("give a MODEL (a .keras file) or --server HOST:PORT")
        model_path = inputs.pop(0)
        if not os.path.exists(model_path) and any(c.isspace() for c in model_path):
            # Preset ids and handles have no spaces: a text came first.
            raise ValueError(
                f"'{model_path}' is not a model: the first argument is MODEL (a "
                ".keras file or a preset), then the texts (or --server HOST:PORT "
                "for a served model)"
            )
    elif inputs and os.path.isfile(inputs[0]) and inputs[0].endswith(".keras"):
        raise ValueError(
            f"'{inputs[0]}' is a model file, but with --server the server's model "
            "answers: give only texts, or drop --server to run the file locally"
        )
    if args.wait and args.server is None:
        raise ValueError("--wait is for --server (waiting for a server to start)")
    texts, pairs, lines = inputs, None, None
    if args.file:
        if texts:
            raise ValueError("give texts on the command line or --file, not both")
        texts, pairs, lines = _read_texts(args, model_path)
    if not texts:
        raise ValueError("no texts to classify: give TEXT arguments or --file")
    if args.server is not None:
        from albert_tf.serving.client import ServingClient

        options = {} if args.batch_size is None else {"batch_size": args.batch_size}
        with ServingClient(
            args.server, args.model_name, timeout=args.timeout, **options
        ) as client:
            if args.wait:
                client.wait_until_ready(args.wait)
            outputs = client.predict(texts, pairs=pairs)
    else:
        from albert_tf.training import evaluation

        model = evaluation.load_text_classifier(model_path)
        columns = bool(args.file) and _read_by_columns(args)
        _check_pairs(model, model_path, pairs is not None, from_file=columns)
        outputs = evaluation.predict(
            model, texts, pairs, args.batch_size or 64, verbose=1
        )
    sys.stdout.write(
        format_predictions(texts, outputs, args.format, pairs, lines) + "\n"
    )
    return 0
