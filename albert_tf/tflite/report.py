"""Side-by-side comparison of all quantization modes of one classifier."""

import logging

from albert_tf.tflite import converter
from albert_tf.tflite import quantization_config
from albert_tf.tflite import verification
from albert_tf.tflite.tflite_classifier import TFLiteClassifier

logger = logging.getLogger(__name__)


def compare_builds(
    classifier,
    texts,
    labels=None,
    input_kind="text",
    modes=quantization_config.MODES,
    calibration_texts=None,
    num_threads=2,
    latency_runs=20,
    sequence_length=None,
    builds=None,
):
    """Builds every mode and measures size, batch-1 latency, accuracy, agreement.

    Args:
        classifier: the float `albert_tf.models.TextClassifier`.
        texts: list of str. Evaluation texts.
        labels: int array or `None` (then agreement only).
        input_kind: str. `"text"` or `"ids"`.
        modes: iterable of mode names.
        calibration_texts: list of str for `int8` (defaults to `texts[:200]`;
            pass training texts to keep calibration and evaluation apart).
        num_threads: int. Interpreter threads for the latency.
        latency_runs: int. Timed batch-1 calls per build.
        sequence_length: int. Packed length of every build (default: the
            preprocessor's).
        builds: dict of mode name -> `.tflite` bytes already built at that
            length (e.g. the one just written), reused instead of rebuilt.

    Returns:
        list of dicts, one per mode: `mode`, `size_bytes`, `latency_ms`,
        `max_abs_logit_diff`, `agreement`, `accuracy`, `keras_accuracy`.
    """
    reference = verification.keras_logits(
        classifier, texts, sequence_length, fast=input_kind == "text"
    )
    calibration_texts = calibration_texts or list(texts[:200])
    latency_text = max(texts, key=len)
    rows = []
    for mode in modes:
        config = quantization_config.from_name(mode, calibration_texts)
        content = (builds or {}).get(mode) or converter.convert(
            classifier, config, input_kind, sequence_length
        )
        model = TFLiteClassifier(content, num_threads=num_threads)
        result = verification.verify(
            classifier, model, texts, labels, reference_logits=reference
        )
        rows.append(
            {
                "mode": mode,
                "size_bytes": len(content),
                "latency_ms": verification.batch1_latency_ms(
                    model, latency_text, classifier.preprocessor, runs=latency_runs
                ),
                "max_abs_logit_diff": result.max_abs_logit_diff,
                "agreement": result.agreement,
                "accuracy": result.tflite_accuracy,
                "keras_accuracy": result.keras_accuracy,
            }
        )
        logger.info("%s: %s", mode, rows[-1])
    return rows


def format_report(rows):
    """A markdown table of `compare_builds` rows, with ratios to float32."""
    base = next((r for r in rows if r["mode"] == "none"), rows[0])
    lines = [
        "| mode | size (MB) | size vs float32 | batch-1 latency (ms) "
        "| latency vs float32 | max abs logit diff | agreement | accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        accuracy = "n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"
        lines.append(
            f"| {r['mode']} | {r['size_bytes'] / 2**20:.2f} "
            f"| {r['size_bytes'] / base['size_bytes']:.2f}x "
            f"| {r['latency_ms']:.2f} | {r['latency_ms'] / base['latency_ms']:.2f}x "
            f"| {r['max_abs_logit_diff']:.2e} | {100 * r['agreement']:.2f}% "
            f"| {accuracy} |"
        )
    if base.get("keras_accuracy") is not None:
        lines.append("")
        lines.append(f"Float model accuracy: {100 * base['keras_accuracy']:.2f}%.")
    return "\n".join(lines) + "\n"
