"""Training benchmark: albert_tf's trainer vs keras-hub `fit`, then SST-2 accuracy.

Two parts, in one process so the throughputs share the machine state:

1. Throughput window: `--window-steps` training steps of
   `configs/sst2_scratch.yaml` with albert_tf's trainer, and the same model,
   optimizer, schedule, batch size, sequence length and data with keras-hub's
   `AlbertTextClassifier.fit` (its preprocessor pads every batch to the full
   sequence length). Examples/s exclude the first `--warmup-steps` steps
   (tracing) and, for albert_tf, dev evaluation. `--rounds` repeats the
   three windows, each round in another order; the ratios reported are the
   median over rounds.
2. Accuracy run (`--full`): the whole config, SST-2 dev accuracy and wall
   time; the model lands in the config's output dir
   (`runs/sst2_scratch/model.keras`), which must hold no earlier run's
   checkpoints (the trainer would resume it).

Usage:
    python -m benchmarks.training                  # throughput only (~5 min)
    python -m benchmarks.training --window-steps 0 --full   # accuracy run
"""

import argparse
import json
import logging
import os
import pathlib
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "sst2_scratch.yaml"
RESULTS_DIR = REPO / "benchmarks" / "results"


def albert_tf_window(steps, warmup_steps, output_dir, static_shapes=False):
    """Examples/s of albert_tf's trainer over `steps` steps (no dev eval).

    `static_shapes=True` pads every batch to the full sequence length, as
    keras-hub does, which isolates the training loop from the bucketing.
    """
    from albert_tf.training import Trainer
    from albert_tf.training import load_config

    config = load_config(
        CONFIG,
        overrides={
            "training.steps": steps,
            "training.log_every_steps": warmup_steps,
            "training.checkpoint_every_steps": 10**9,
            "training.verbose": 0,
            "data.dev": None,
            "strategy.static_shapes": static_shapes,
        },
    )
    result = Trainer(config, output_dir=output_dir).train()
    return result["steady_train_examples_per_s"]


class _StepTimes:
    def __init__(self):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(cb, batch, logs=None):
                self.times.append(time.perf_counter())

        self.times = []
        self.callback = Callback()


def keras_hub_window(config, steps, warmup_steps):
    """Examples/s of keras-hub `AlbertTextClassifier.fit`, same setup."""
    import keras
    import keras_hub

    from albert_tf.training import data_files
    from albert_tf.training.schedule import make_optimizer

    vocabulary = data_files.LabelVocabulary(config.data.label_names)
    data = data_files.read_labelled_text(config.data.train, config.data, vocabulary)
    keras.utils.set_random_seed(config.seed)
    tokenizer = keras_hub.models.AlbertTokenizer(proto=config.model.vocabulary)
    preprocessor = keras_hub.models.AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=config.model.sequence_length
    )
    backbone = keras_hub.models.AlbertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), **vars(config.model.backbone)
    )
    classifier = keras_hub.models.AlbertTextClassifier(
        backbone,
        num_classes=len(vocabulary),
        preprocessor=preprocessor,
        dropout=config.model.dropout,
    )
    optimizer = make_optimizer(config.optimizer, total_steps=steps)
    optimizer.global_clipnorm = config.optimizer.clipnorm
    classifier.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    batch = config.training.global_batch_size
    count = steps * batch
    texts = (data.texts * (count // len(data) + 1))[:count]
    labels = (data.labels * (count // len(data) + 1))[:count]
    times = _StepTimes()
    classifier.fit(
        x=texts,
        y=labels,
        batch_size=batch,
        epochs=1,
        callbacks=[times.callback],
        verbose=0,
    )
    t = times.times
    return (len(t) - warmup_steps) * batch / (t[-1] - t[warmup_steps - 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--window-steps",
        type=int,
        default=60,
        help="throughput window per trainer (0: skip)",
    )
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of the three windows; ratios are the median over rounds",
    )
    parser.add_argument(
        "--full", action="store_true", help="also run the whole config for dev accuracy"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="config overrides for the full run"
    )
    parser.add_argument("--json", help="write the figures here as JSON")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1; got {args.rounds}")
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    from albert_tf.training import Trainer
    from albert_tf.training import load_config
    from albert_tf.training.checkpoints import latest_checkpoint_step
    from albert_tf.training.config import parse_overrides

    config = load_config(CONFIG)
    figures = {
        "config": str(CONFIG.relative_to(REPO)),
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg(),
    }
    if args.window_steps:
        # Rounds of the three windows back to back: the machine's speed drifts
        # by 30% over minutes here, so each ratio compares windows of one round.
        rounds = []

        def window(name):
            if name == "keras_hub":
                return keras_hub_window(config, args.window_steps, args.warmup_steps)
            with tempfile.TemporaryDirectory() as tmp:
                return albert_tf_window(
                    args.window_steps,
                    args.warmup_steps,
                    tmp,
                    static_shapes=name == "static",
                )

        order = ["bucketed", "static", "keras_hub"]
        for i in range(args.rounds):
            # Each round starts with another window, so none is always first
            # (or last) on a machine whose speed drifts.
            names = order[i % 3 :] + order[: i % 3]
            rates = {name: window(name) for name in names}
            ours, ours_static = rates["bucketed"], rates["static"]
            theirs = rates["keras_hub"]
            rounds.append(
                {
                    "albert_tf_examples_per_s": ours,
                    "albert_tf_static_shapes_examples_per_s": ours_static,
                    "keras_hub_fit_examples_per_s": theirs,
                    "ratio": ours / theirs,
                    "ratio_static_shapes": ours_static / theirs,
                }
            )
            print(
                f"throughput: albert_tf {ours:.1f} ex/s (bucketed), {ours_static:.1f} "
                f"ex/s (padded to {config.model.sequence_length}), keras-hub fit "
                f"{theirs:.1f} ex/s; ratios {ours / theirs:.2f} / "
                f"{ours_static / theirs:.2f}"
            )
        ratio = statistics.median(r["ratio"] for r in rounds)
        ratio_static = statistics.median(r["ratio_static_shapes"] for r in rounds)
        figures.update(
            window_steps=args.window_steps,
            rounds=rounds,
            median_ratio=ratio,
            median_ratio_static_shapes=ratio_static,
        )
        print(
            f"median over {args.rounds} rounds: ratios {ratio:.2f} (bucketed) / "
            f"{ratio_static:.2f} (same padding)"
        )
        # For the summary chart of `benchmarks.run_all`.
        (RESULTS_DIR / "training.json").write_text(
            json.dumps(
                {
                    "command": "python -m benchmarks.training",
                    "ratios": {
                        "training ex/s vs keras-hub fit (bucketed)": ratio,
                        "training ex/s vs keras-hub fit (same padding)": ratio_static,
                    },
                },
                indent=2,
            )
        )
    if args.full:
        full_config = load_config(CONFIG, overrides=parse_overrides(args.set))
        checkpoints = pathlib.Path(full_config.output_dir) / "checkpoints"
        if latest_checkpoint_step(checkpoints) is not None:
            # The trainer would resume (or skip) that run: no figure to measure.
            parser.error(
                f"{checkpoints} holds an earlier run's checkpoints; the accuracy "
                "run must start from scratch: remove that folder or pass "
                "--set output_dir=NEW_DIR"
            )
        started = time.perf_counter()
        result = Trainer(full_config).train()
        figures.update(
            full_steps=result["steps"],
            full_wall_time_s=time.perf_counter() - started,
            full_train_wall_time_s=result["wall_time_s"],
            full_steady_examples_per_s=result["steady_train_examples_per_s"],
            dev_accuracy_best=result["best"]["accuracy"],
            dev_best_step=result["best"]["step"],
            dev_accuracy_history=[
                (e["step"], e["accuracy"]) for e in result["history"]["eval"]
            ],
            resumed_from_step=result["resumed_from_step"],
            model=os.path.join(full_config.output_dir, "model.keras"),
        )
        print(
            f"SST-2 dev accuracy {result['best']['accuracy']:.4f} (step "
            f"{result['best']['step']}), wall {figures['full_wall_time_s']:.0f} s"
        )
    figures["load_average_end"] = os.getloadavg()
    print(json.dumps(figures, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
