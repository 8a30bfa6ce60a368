"""Achieved GFLOP/s of the ALBERT-base encoder vs this machine's matmul peak.

Run: python -m benchmarks.flops
The peak is a large float32 `tf.matmul` measured in the same run; the model's
FLOPs are counted analytically (multiply-adds x 2) for the configuration used.
"""

import logging

import numpy as np
import tensorflow as tf

from benchmarks.common import albert_base_config
from benchmarks.common import best_rate
from benchmarks.common import parse_command_line
from benchmarks.common import write_results

COMMAND = "python -m benchmarks.flops"


def encoder_flops(config, sequence_length):
    """Forward-pass FLOPs of one sequence through the ALBERT encoder."""
    length, hidden = sequence_length, config["hidden_dim"]
    ffn, embedding = config["intermediate_dim"], config["embedding_dim"]
    # Q, K, V and output projections; attention scores and mixing; the FFN.
    per_layer = (
        8 * length * hidden * hidden
        + 4 * length * length * hidden
        + 4 * length * hidden * ffn
    )
    return (
        config["num_layers"] * per_layer
        + 2 * length * embedding * hidden  # Embedding projection.
        + 2 * hidden * hidden  # Pooler.
    )


def matmul_peak_gflops(n=2048):
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(lambda: tf.matmul(a, b))
    return best_rate(lambda: matmul().numpy(), 2 * n**3) / 1e9


def main(batch_size=32, sequence_length=128):
    from albert_tf.models import AlbertBackbone

    config = albert_base_config()
    backbone = AlbertBackbone(**config)
    rng = np.random.default_rng(0)
    inputs = {
        "token_ids": tf.constant(
            rng.integers(5, 30000, (batch_size, sequence_length)), tf.int32
        ),
        "segment_ids": tf.zeros((batch_size, sequence_length), tf.int32),
        "padding_mask": tf.ones((batch_size, sequence_length), tf.int32),
    }
    forward = tf.function(lambda x: backbone(x)["pooled_output"])
    sequences_per_s = best_rate(
        lambda: forward(inputs).numpy(), batch_size, repeats=2, min_seconds=3.0
    )
    flops = encoder_flops(config, sequence_length)
    achieved = sequences_per_s * flops / 1e9
    peak = matmul_peak_gflops()
    lines = [
        f"ALBERT-base encoder (random weights), batch {batch_size}, {sequence_length} "
        "tokens, float32, `tf.function` without XLA.",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| FLOPs per sequence (analytic) | {flops / 1e9:.2f} GFLOP |",
        f"| sequences/s | {sequences_per_s:.1f} |",
        f"| achieved | {achieved:.1f} GFLOP/s |",
        f"| float32 matmul peak (2048x2048, same run) | {peak:.1f} GFLOP/s |",
        f"| achieved / peak | {achieved / peak:.0%} |",
    ]
    write_results(
        "flops", COMMAND, lines, {"encoder GFLOP/s vs matmul peak": achieved / peak}
    )
    print("\n".join(lines))
    return {"achieved_gflops": achieved, "peak_gflops": peak}


if __name__ == "__main__":
    parse_command_line(__doc__)
    logging.basicConfig(level=logging.INFO)
    main()
