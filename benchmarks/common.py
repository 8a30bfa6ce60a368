"""Shared benchmark helpers: timing, the machine description, result files."""

import os
import pathlib
import platform
import subprocess
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def albert_base_config():
    """`AlbertBackbone` kwargs of keras-hub's `albert_base_en_uncased`."""
    from albert_tf.presets.builtin_presets import BUILTIN_PRESETS

    return dict(BUILTIN_PRESETS["albert_base_en_uncased"]["config"])


SHARED_DATA = REPO.parent / "shared" / "data"
RESULTS_DIR = REPO / "benchmarks" / "results"


def machine_description():
    """One line naming the CPU, its cores and the software versions."""
    import keras
    import tensorflow as tf

    cpu = _cpuinfo_field("model name") or platform.processor() or "unknown CPU"
    flags = cpu_int8_flags()
    if flags is not None:
        cpu += f" ({' '.join(flags) or 'no AVX2'})"
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


# Vector extensions that decide int8 and float matmul speed (int8 TFLite
# models beat float32 only with int8 dot-product instructions).
_SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_int8_flags():
    """Which of `_SPEED_FLAGS` this x86 CPU has, or `None` if unknown."""
    flags = _cpuinfo_field("flags")
    if flags is None:
        return None
    have = set(flags.split())
    return [f for f in _SPEED_FLAGS if f in have]


def _cpuinfo_field(name):
    """The first `name : value` of /proc/cpuinfo, or `None` off Linux."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def parse_command_line(doc):
    """`--help` for benchmarks without options: prints `doc`, runs nothing."""
    import argparse

    argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()


def best_rate(fn, items, repeats=3, min_seconds=1.0):
    """Items per second of `fn()` (which processes `items` items), best of runs."""
    fn()  # Warm-up: tracing, caches.
    best = 0.0
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        while True:
            fn()
            count += items
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = max(best, count / elapsed)
    return best


def sst2_dev_sentences():
    path = SHARED_DATA / "sst2" / "dev.tsv"
    if not path.is_file():
        raise SystemExit(f"benchmark needs {path} (../shared/data beside the repo)")
    return [line.split("\t")[0] for line in path.read_text().splitlines()[1:]]


def spiece_model_path():
    path = SHARED_DATA / "albert" / "spiece.model"
    if not path.is_file():
        raise SystemExit(f"benchmark needs {path} (../shared/data beside the repo)")
    return str(path)


def write_results(area, command, lines, ratios=None):
    """Writes benchmarks/results/<area>.md: the command, the machine, the figures.

    `ratios` ({label: ours / peer}) also go to `<area>.json`, from which
    `benchmarks.run_all` draws the summary chart.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.strip()
    header = [
        f"Command: `{command}`",
        f"Machine: {machine_description()}",
        f"Commit: {commit or 'unknown'}; "
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"1-min load average at the end: {load:.1f}",
        "",
    ]
    path = RESULTS_DIR / f"{area}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(header + list(lines)) + "\n")
    tmp.replace(path)
    if ratios:
        import json

        json_path = RESULTS_DIR / f"{area}.json"
        json_tmp = json_path.with_suffix(".json.tmp")
        json_tmp.write_text(
            json.dumps({"command": command, "ratios": ratios}, indent=2)
        )
        json_tmp.replace(json_path)
    return path
