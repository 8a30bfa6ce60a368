"""Classification metrics, `metrics.json` and PNG plots of a run."""

import json

import numpy as np

from albert_tf.atomic_file import atomic_path
from albert_tf.atomic_file import write_text


def classification_report(labels, predictions, label_names):
    """Accuracy, per-class precision/recall/F1 and the confusion matrix.

    Args:
        labels: int array. True class ids.
        predictions: int array. Predicted class ids.
        label_names: list of str. Class names in id order.

    Returns:
        A JSON-ready dict: `accuracy`, `macro_f1` (the mean F1 of the classes
        in `labels` or `predictions`, as scikit-learn's: a class the data
        lacks and the model never predicts has no F1), `num_examples`,
        `per_class` (name -> precision, recall, f1, support), `label_names`
        and `confusion_matrix` (rows: true class, columns: predicted class,
        both in `label_names` order).
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    n = len(label_names)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    true_positives = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(support > 0, true_positives / support, 0.0)
        f1 = np.where(
            precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0
        )
    present = (support > 0) | (predicted > 0)
    return {
        "accuracy": float(true_positives.sum() / max(len(labels), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "num_examples": int(len(labels)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "label_names": list(label_names),
        "confusion_matrix": matrix.tolist(),
    }


def mean_cross_entropy(outputs, labels, from_logits=True):
    """The mean cross-entropy loss of `outputs` (logits, or probabilities)."""
    outputs = np.asarray(outputs, np.float64)
    if from_logits:
        shifted = outputs - outputs.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    else:
        log_probs = np.log(np.clip(outputs, 1e-12, 1.0))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def format_report(report, label_names):
    """A human-readable table of `classification_report` output."""
    width = max([len(n) for n in label_names] + [8])
    lines = [
        f"accuracy: {report['accuracy']:.4f}   macro F1: {report['macro_f1']:.4f}   "
        f"examples: {report['num_examples']}",
        "",
        f"{'class':<{width}}  precision  recall     f1  support",
    ]
    for name in label_names:
        c = report["per_class"][name]
        lines.append(
            f"{name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  "
            f"{c['f1']:5.4f}  {c['support']:7d}"
        )
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    lines.append(" " * (width + 2) + "  ".join(f"{n:>{width}}" for n in label_names))
    for name, row in zip(label_names, report["confusion_matrix"], strict=True):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)


def write_json_atomic(path, payload):
    """Writes JSON to a temp file beside `path`, then renames it into place."""
    write_text(path, json.dumps(payload, indent=2))


def _save_figure_atomic(figure, path):
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def plot_curves(history, path):
    """Training loss and dev loss/accuracy against the step, as a PNG.

    Args:
        history: dict with lists `train` (`step`, `loss`, `accuracy`) and
            `eval` (`step`, `loss`, `accuracy`).
        path: str. The PNG to write.
    """
    # A bare Figure draws with Agg on savefig, leaving pyplot's backend (a
    # notebook's inline one, say) as the caller set it.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    loss_ax, acc_ax = figure.subplots(1, 2)
    for split, style in (("train", "-"), ("eval", "o-")):
        rows = history.get(split) or []
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        name = "dev" if split == "eval" else split
        loss_ax.plot(steps, [r["loss"] for r in rows], style, label=name)
        acc_ax.plot(steps, [r["accuracy"] for r in rows], style, label=name)
    loss_ax.set(title="Loss", xlabel="step")
    acc_ax.set(title="Accuracy", xlabel="step", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    _save_figure_atomic(figure, path)


def plot_confusion_matrix(matrix, label_names, path, title="Dev confusion matrix"):
    """The confusion matrix as an annotated heat map PNG."""
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix)
    size = max(3, 0.8 * len(label_names) + 2)
    figure = Figure(figsize=(size, size))
    ax = figure.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set(
        xticks=range(len(label_names)),
        yticks=range(len(label_names)),
        xticklabels=label_names,
        yticklabels=label_names,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    # Long class names would run into each other along the x axis.
    for label in ax.get_xticklabels():
        label.set(rotation=30, ha="right", rotation_mode="anchor")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
        )
    _save_figure_atomic(figure, path)
