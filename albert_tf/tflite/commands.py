"""`albert-tf tflite`: build (and verify) a TFLite file from a trained model."""

import logging
import os

import numpy as np

from albert_tf import cli_types
from albert_tf.tflite.quantization_config import MODES
from albert_tf.training.commands import add_column_arguments

logger = logging.getLogger(__name__)

# Defaults of options that are refused where they would be ignored (so their
# parser default is None: given or not).
CALIBRATION_SIZE = 200
MAX_ACCURACY_DROP = 1.0


def register(subparsers):
    parser = subparsers.add_parser(
        "tflite",
        help="build a (quantized) TFLite file, tokenizer inside, and verify it",
        description="Convert a trained classifier to TFLite. With --input text the "
        "file takes raw strings (FastSentencepiece + ALBERT preprocessing inside; "
        "apps link tf-text's TFLite ops); with --input ids it takes token_ids, "
        "segment_ids, padding_mask [1, L] and uses builtins only. Writes "
        "OUT.tflite, OUT.labels.txt and OUT.json (metadata), and OUT.spm (the "
        "SentencePiece model) for --input ids.",
    )
    parser.add_argument(
        "model",
        help="A .keras file, a preset directory, or a string-in SavedModel "
        "from `albert-tf export`: a version folder, or the export base for its "
        "newest version (verification then runs the export's predict_ids "
        "signature on the texts, tokenized in Python with the export's "
        "SentencePiece model and settings).",
    )
    parser.add_argument("output", help="The .tflite file to write.")
    parser.add_argument(
        "--quantize",
        choices=MODES,
        default="none",
        help="none (float32), float16 (weights), dynamic (int8 weights) or int8 "
        "(full-integer encoder, calibrated on real texts).",
    )
    parser.add_argument(
        "--input",
        choices=("text", "ids"),
        default="text",
        dest="input_kind",
        help="text: string in, tokenizer inside (default); "
        "ids: int32 ids in, builtins only.",
    )
    parser.add_argument(
        "--sequence-length",
        type=cli_types.positive_int,
        default=None,
        help="Packed length (default: the model preprocessor's, or the one a "
        "SavedModel export records).",
    )
    parser.add_argument(
        "--calibration-data",
        default=None,
        help="File of int8 calibration texts (read like --verify; labels "
        "not needed); defaults to the --verify data. For --quantize int8 "
        "or --report only.",
    )
    parser.add_argument(
        "--calibration-size",
        type=cli_types.positive_int,
        default=None,
        help=f"How many calibration texts int8 uses (default {CALIBRATION_SIZE}). For "
        "--quantize int8 or --report only.",
    )
    parser.add_argument(
        "--verify",
        default=None,
        metavar="DATA",
        help="Labelled TSV/CSV/JSONL/TFRecord file (columns: the options below): "
        "compare with the float Keras model before writing; fails (nothing "
        "written) if a gate fails.",
    )
    parser.add_argument(
        "--max-accuracy-drop",
        type=cli_types.percentage_points,
        default=None,
        help="Quantized builds: allowed accuracy drop in points (default "
        f"{MAX_ACCURACY_DROP:g}). "
        "Needs --verify.",
    )
    parser.add_argument(
        "--min-agreement",
        type=cli_types.fraction,
        default=None,
        help="Minimum prediction agreement with the float model, 0-1. Needs --verify.",
    )
    parser.add_argument(
        "--report",
        default=None,
        metavar="REPORT.md",
        help="Also build every quantization mode and write a side-by-side "
        "markdown report (size, batch-1 latency, accuracy, agreement) "
        "on --verify data.",
    )
    add_column_arguments(parser)
    parser.set_defaults(func=run)


def _load(model, sequence_length):
    from albert_tf.models import load_classifier
    from albert_tf.serving.model_manager import version_folders
    from albert_tf.tflite import saved_model_source

    if not os.path.exists(model):
        raise FileNotFoundError(f"Model not found: '{model}'.")
    if saved_model_source.is_saved_model(model):
        return saved_model_source.SavedModelClassifier(model, sequence_length)
    versions = version_folders(model)
    if versions:  # An export base, as `inspect` and `serve` take: its newest.
        newest = versions[max(versions)]
        logger.info(
            "'%s' is an export base; converting its newest version %s.", model, newest
        )
        return saved_model_source.SavedModelClassifier(newest, sequence_length)
    return load_classifier(model)


def _read_labelled(path, args, classifier, with_labels=True):
    """Texts and class ids of a file, read with the column options."""
    from albert_tf.models import class_names
    from albert_tf.training.commands import COLUMN_HINT
    from albert_tf.training.commands import data_config_from_args
    from albert_tf.training.data_files import LabelVocabulary
    from albert_tf.training.data_files import read_labelled_text

    model_path = args.model if args.model.endswith(".keras") else None
    data = read_labelled_text(
        path,
        data_config_from_args(args, model_path),
        LabelVocabulary(class_names(classifier)),
        with_labels=with_labels,
        column_hint=COLUMN_HINT,
        format_option="--data-format",
    )
    if data.text_pairs is not None:
        raise ValueError(
            "This model takes single texts (TFLite text builds take no pairs); "
            "drop --text-pair-column"
        )
    return data.texts, (np.array(data.labels) if with_labels else None)


def _check_options(args):
    """Refuses options this build would ignore (they once passed silently)."""
    if not args.verify:
        for option, value in (
            ("--report", args.report),
            ("--max-accuracy-drop", args.max_accuracy_drop),
            ("--min-agreement", args.min_agreement),
        ):
            if value is not None:
                raise ValueError(
                    f"{option} needs --verify DATA (the texts the build is checked on)."
                )
    if args.quantize != "int8" and not args.report:
        for option, value in (
            ("--calibration-data", args.calibration_data),
            ("--calibration-size", args.calibration_size),
        ):
            if value is not None:
                raise ValueError(
                    f"{option} needs --quantize int8 or --report (only int8 "
                    f"builds are calibrated; this one is {args.quantize})."
                )


def run(args):
    from albert_tf.atomic_file import ensure_writable
    from albert_tf.atomic_file import write_text
    from albert_tf.tflite import build
    from albert_tf.tflite import converter
    from albert_tf.tflite import quantization_config
    from albert_tf.tflite import report
    from albert_tf.tflite import verification

    # Conversion takes minutes: check the options and the targets first.
    _check_options(args)
    targets = build.check_output_paths(
        args.output,
        args.input_kind,
        written=[("--report", args.report)],
        read=[
            ("the model", args.model),
            ("--verify", args.verify),
            ("--calibration-data", args.calibration_data),
        ],
    )
    for path in targets:
        ensure_writable(path)
    classifier = _load(args.model, args.sequence_length)
    if getattr(classifier.preprocessor, "text_pairs", None) and (
        args.verify or args.report or args.quantize == "int8"
    ):
        raise ValueError(
            "This model was trained on text pairs, and --verify, --report and "
            "int8 calibration read single texts. Build it with --input ids and "
            "--quantize none, float16 or dynamic, then check it in Python: "
            "TFLiteClassifier(path).predict(texts, preprocessor=..., pairs=...)."
        )
    texts = labels = None
    if args.verify:
        texts, labels = _read_labelled(args.verify, args, classifier)
    calibration = []
    if args.quantize == "int8" or args.report:
        if args.calibration_data:
            calibration, _ = _read_labelled(
                args.calibration_data, args, classifier, with_labels=False
            )
        elif texts is not None:
            calibration = texts
        else:
            raise ValueError(
                "--quantize int8 needs --calibration-data (or --verify) texts."
            )
        size = args.calibration_size or CALIBRATION_SIZE
        calibration = list(calibration[:size])
    config = quantization_config.from_name(args.quantize, calibration)
    length = args.sequence_length or classifier.preprocessor.sequence_length
    content = converter.convert(classifier, config, args.input_kind, length)
    if args.verify:
        result = verification.verify(
            classifier,
            content,
            texts,
            labels,
            quantized=config.mode != "none",
            max_accuracy_drop=(
                MAX_ACCURACY_DROP
                if args.max_accuracy_drop is None
                else args.max_accuracy_drop
            ),
            min_agreement=args.min_agreement,
            sequence_length=length,
        )
        print(f"verify: {result.summary()}")
        if not result.passed:
            raise ValueError(
                f"verification failed, {args.output} not written: "
                + "; ".join(result.failures)
            )
    else:
        result = None
        if config.mode != "none":
            logger.warning(
                "Writing the %s-quantized build without --verify: its accuracy is "
                "unchecked (recorded as verification: null in the metadata).",
                config.mode,
            )
    metadata = build.write_build(
        classifier, args.output, content, config, args.input_kind, length, result
    )
    print(
        f"wrote {args.output} ({metadata['size_bytes'] / 2**20:.2f} MiB, "
        f"{args.input_kind}-in, {config.mode}); custom ops: "
        f"{', '.join(metadata['required_custom_ops']) or 'none'}"
    )
    if args.report:
        rows = report.compare_builds(
            classifier,
            texts,
            labels,
            args.input_kind,
            calibration_texts=calibration,
            sequence_length=length,
            builds={config.mode: content},  # Just built: not again.
        )
        table = report.format_report(rows)
        write_text(args.report, table)
        print(table)
    return 0
