"""`make bench`: every benchmark in one run, then RESULTS.md and a chart.

Run: python -m benchmarks.run_all [--only NAME ...]
Each benchmark runs in its own process (some configure TensorFlow devices at
start-up) and writes benchmarks/results/<name>.md (+ .json of ratios); this
script then assembles benchmarks/RESULTS.md and benchmarks/results.png.
"""

import argparse
import json
import logging
import subprocess
import sys
import time

from benchmarks.common import REPO
from benchmarks.common import RESULTS_DIR
from benchmarks.common import machine_description

# (name, module, extra arguments, timeout seconds), in report order.
BENCHMARKS = (
    ("tokenization", "benchmarks.tokenization", [], 600),
    ("flops", "benchmarks.flops", [], 600),
    ("serving", "benchmarks.serving", [], 900),
    ("tflite", "benchmarks.tflite", [], 900),
    ("training", "benchmarks.training", [], 1800),
    ("presets", "benchmarks.presets", [], 900),
)
TITLES = {
    "tokenization": "Tokenization throughput",
    "flops": "Achieved GFLOP/s vs matmul peak",
    "serving": "TF Serving export and dev server vs keras-hub and HF torch",
    "tflite": "TFLite builds",
    "training": "Training (SST-2 from scratch) vs keras-hub",
    "presets": "Checkpoint loading",
}


def run(names):
    status = {}
    for name, module, args, timeout in BENCHMARKS:
        if names and name not in names:
            continue
        logging.info("running %s", module)
        start = time.time()
        try:
            result = subprocess.run(
                [sys.executable, "-m", module, *args], cwd=REPO, timeout=timeout
            )
            status[name] = (
                "ok" if result.returncode == 0 else f"exit {result.returncode}"
            )
        except subprocess.TimeoutExpired:
            status[name] = f"timed out after {timeout} s"
        logging.info("%s: %s in %.0f s", name, status[name], time.time() - start)
    return status


def chart(path):
    """A horizontal bar chart of every ratio ours/peer (1.0 = parity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    for name, *_ in BENCHMARKS:
        figures = RESULTS_DIR / f"{name}.json"
        if figures.is_file():
            for label, value in json.loads(figures.read_text())["ratios"].items():
                labels.append(label)
                values.append(value)
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.2))
    ax.barh(labels[::-1], values[::-1], color="#3b7dd8")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:.2f}x", va="center")
    ax.set_xlabel("ratio (ours / peer; flops and TFLite rows: see RESULTS.md)")
    ax.set_title("albert-tf benchmarks")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _demote_headings(text, levels=2):
    """A section's own headings, nested under its `##` title (not in code)."""
    lines, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("#"):
            line = "#" * levels + line
        lines.append(line)
    return "\n".join(lines)


def assemble(status):
    lines = [
        "# Benchmark results",
        "",
        "Made by `make bench` (`python -m benchmarks.run_all`); each section names "
        "the command that produced it and can be rerun alone. Ratios compare peers "
        "measured in the same run on the same machine.",
        "",
        f"Last assembled on: {machine_description()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "![summary](results.png)",
        "",
    ]
    for name, *_ in BENCHMARKS:
        section = RESULTS_DIR / f"{name}.md"
        lines.append(f"## {TITLES[name]}")
        lines.append("")
        if name in status and status[name] != "ok":
            lines += [f"**This run: {status[name]}; the figures below are older.**", ""]
        lines.append(
            _demote_headings(section.read_text().strip())
            if section.is_file()
            else "Not run yet."
        )
        lines.append("")
    out = REPO / "benchmarks" / "RESULTS.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(out)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=[], help="benchmark names to run")
    parser.add_argument(
        "--assemble-only",
        action="store_true",
        help="only rebuild RESULTS.md and the chart from results/",
    )
    args = parser.parse_args()
    status = {} if args.assemble_only else run(args.only)
    chart(REPO / "benchmarks" / "results.png")
    print(f"wrote {assemble(status)}")
    return 0 if all(v == "ok" for v in status.values()) else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
