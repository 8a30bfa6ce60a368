"""The training loop: distributed steps, evaluation, checkpoints, outputs.

One loop serves every strategy: each step runs `strategy.run` on a replica
function (Keras 3 `fit` is broken upstream for some strategies, see
keras#20585 and keras#21069, and a custom loop gives exact control of
gradient clipping across replicas and of resuming mid-epoch).
"""

import collections
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time

import filelock
import keras
import tensorflow as tf
import yaml

from albert_tf.atomic_file import atomic_path
from albert_tf.atomic_file import remove_temp_leftovers
from albert_tf.atomic_file import write_text
from albert_tf.native_logs import say_onednn_int_notice_quietly
from albert_tf.training import data_files
from albert_tf.training import data_pipeline
from albert_tf.training import metrics as metrics_lib
from albert_tf.training import strategy as strategy_lib
from albert_tf.training.checkpoints import CheckpointManager
from albert_tf.training.config import load_config
from albert_tf.training.evaluation import inference_function
from albert_tf.training.evaluation import predict_logits
from albert_tf.training.evaluation import report_from_outputs
from albert_tf.training.model_factory import build_classifier
from albert_tf.training.model_factory import build_preprocessor
from albert_tf.training.progress import progress_display
from albert_tf.training.resume import check_same_run
from albert_tf.training.resume import check_workers_agree
from albert_tf.training.resume import drop_events_after
from albert_tf.training.resume import file_digest
from albert_tf.training.resume import resume_fingerprint
from albert_tf.training.schedule import make_optimizer
from albert_tf.training.stop_signals import DeferredStop

logger = logging.getLogger(__name__)

LOCK_FILE = ".train.lock"
# What `train` writes at the top of its output folder (by temp file, rename).
OUTPUT_FILES = (
    "model.keras",
    "metrics.json",
    "config.yaml",
    "curves.png",
    "confusion_matrix.png",
)

# `train --skip-bad-rows` on the command line; the config key from Python.
_SKIP_OPTION = "--skip-bad-rows (data.skip_bad_rows: true)"


def _float32_copy(classifier):
    """The classifier (same weights and preprocessor) with float32 variables."""
    config = classifier.get_config()
    backbone = classifier.backbone
    config["backbone"] = type(backbone).from_config(
        {**backbone.get_config(), "dtype": "float32"}
    )
    config["preprocessor"] = classifier.preprocessor
    copy = type(classifier)(**config)
    copy.set_weights(classifier.get_weights())
    return copy


def _random_states(model):
    """The model's seed-generator states (dropout's), as `tf.Variable`s."""
    weights = {id(w) for w in model.weights}
    return [
        v.value
        for v in model.variables
        if id(v) not in weights and v.name == "seed_generator_state"
    ]


# Replica k's dropout seeds move by k * this prime: coprime to the 2**31 - 2
# that Keras reduces seeds by, so no two replicas share a stream.
_REPLICA_SEED_STRIDE = 1_000_003


def _seed_replicas_apart(strategy, random_states):
    """Gives each replica its own dropout masks.

    Keras keeps one seed state per replica and starts them equal, so every
    replica would draw the same masks for its rows. Replica `k` adds
    `k * _REPLICA_SEED_STRIDE` to its seeds; replica 0 keeps its own, the one
    checkpoints save, so this runs again after each restore.
    """
    if strategy.num_replicas_in_sync == 1 or not random_states:
        return

    def offset():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        shift = tf.cast(replica, tf.int64) * _REPLICA_SEED_STRIDE
        for state in random_states:
            state.assign_add(tf.stack([shift, tf.zeros_like(shift)]))

    tf.function(lambda: strategy.run(offset))()


def save_model_atomic(model, path):
    """`model.save(path)` through a temp file beside it, then a rename."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def _scalar_summary(name, value, step):
    """`tf.summary.scalar` without the `tensorboard` package (TF core ops only).

    The "scalars" plugin metadata is what TensorBoard's own helper writes.
    """
    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=metadata)


def _log_entry(writer, entry):
    """Writes a history entry's figures (all but `step`) to TensorBoard."""
    with writer.as_default():
        for key, value in entry.items():
            if key != "step":
                _scalar_summary(key, value, entry["step"])


def _evals_since_best(history, best):
    """How many dev evaluations came after the best one."""
    return sum(entry["step"] > best["step"] for entry in history["eval"])


def _better(entry, best, key):
    """Whether a dev `entry` beats `best` on `key` (loss: lower is better)."""
    if best is None:
        return True
    if key == "loss":
        return entry[key] < best[key]
    return entry[key] > best[key]


class Trainer:
    """Fine-tunes or trains an `AlbertTextClassifier` from a `TrainConfig`.

    Rerunning with the same output directory resumes from the newest
    checkpoint there (step, optimizer state, data position, metric history).

    `train()` seeds Python's, NumPy's and TensorFlow's global random
    generators with the config's `seed` (`keras.utils.set_random_seed`), and
    logs progress to the `albert_tf` logger: in a notebook,
    `logging.getLogger("albert_tf").setLevel(logging.INFO)` shows it.

    After `train()`, `trainer.model` is the model as trained, at the last
    step. `model.keras` in the output directory holds the best dev step's
    (`training.best_metric`): load it with
    `albert_tf.models.load_classifier(trainer.output_dir + "/model.keras")`.

    Args:
        config: `albert_tf.training.config.TrainConfig`.
        output_dir: str. Overrides `config.output_dir`.

    Example:
    ```python
    from albert_tf.training import Trainer
    from albert_tf.training import load_config

    config = load_config("configs/tiny.yaml", overrides={"training.steps": 50})
    result = Trainer(config, output_dir="runs/tiny").train()
    result["best"]["accuracy"]
    ```
    """

    def __init__(self, config, output_dir=None):
        self.config = config
        self.output_dir = os.path.abspath(output_dir or config.output_dir or "")
        if not (output_dir or config.output_dir):
            raise ValueError("no output directory: set 'output_dir' or pass --output")
        self.model = None  # After `train()`: the last step's classifier.
        self.is_chief = True  # False on the other workers of a cluster.

    # === Setup ===

    def _read_data(self):
        cfg = self.config.data
        vocabulary = None
        if cfg.label_names is not None:
            vocabulary = data_files.LabelVocabulary(cfg.label_names)
        train = data_files.read_labelled_text(
            cfg.train, cfg, vocabulary, skip_option=_SKIP_OPTION
        )
        if vocabulary is None:
            vocabulary = data_files.LabelVocabulary.from_labels(train.labels)
            train.labels = [vocabulary.lookup(label) for label in train.labels]
        if len(vocabulary) < 2:
            raise ValueError(
                f"{cfg.train}: every row has the label {vocabulary.names[0]!r}; a "
                "classifier needs at least 2 classes (data.label_names can list "
                "classes the file lacks)."
            )
        unseen = sorted(set(range(len(vocabulary))) - set(train.labels))
        if unseen:
            hint = (
                "the model cannot learn to predict them"
                if cfg.label_names is not None
                else "integer labels are class ids 0 to max; set data.label_names "
                "to name the classes"
            )
            logger.warning(
                "%s: no training rows for classes %s (%s).",
                cfg.train,
                [vocabulary.names[i] for i in unseen],
                hint,
            )
        dev = None
        if cfg.dev is not None:
            dev = data_files.read_labelled_text(
                cfg.dev, cfg, vocabulary, skip_option=_SKIP_OPTION
            )
        return train, dev, vocabulary

    def _class_weights(self, labels, vocabulary):
        """`training.class_weights` as a list in class-id order, or `None`."""
        weights = self.config.training.class_weights
        if weights is None:
            return None
        if weights == "balanced":
            counts = collections.Counter(labels)
            return [
                len(labels) / (len(counts) * counts[i]) if counts[i] else 1.0
                for i in range(len(vocabulary))
            ]
        by_id = [1.0] * len(vocabulary)
        for name, weight in weights.items():
            class_id = vocabulary.lookup(name)
            if class_id is None:
                raise ValueError(
                    f"config key 'training.class_weights.{name}': no such class "
                    f"(the classes: {', '.join(vocabulary.names)})"
                )
            by_id[class_id] = weight
        if not any(by_id):
            raise ValueError(
                "config key 'training.class_weights': every class weighs 0, so "
                "the model would learn nothing"
            )
        return by_id

    def _total_steps(self, num_examples):
        cfg = self.config.training
        if cfg.steps is not None:
            return cfg.steps
        return max(1, int(cfg.epochs * num_examples) // cfg.global_batch_size)

    # === Steps ===

    def _make_train_step(
        self, model, optimizer, strategy, global_batch_size, class_weights=None
    ):
        clipnorm = self.config.optimizer.clipnorm
        accumulation = self.config.training.gradient_accumulation_steps
        if class_weights is not None:
            class_weights = tf.constant(class_weights, tf.float32)
        variables = model.trainable_variables
        loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

        def micro_step(x, y):
            """Gradients, loss and correct count of one micro-batch."""
            with tf.GradientTape() as tape:
                logits = tf.cast(model(x, training=True), tf.float32)
                per_example = keras.losses.sparse_categorical_crossentropy(
                    y, logits, from_logits=True
                )
                if class_weights is not None:
                    per_example *= tf.gather(class_weights, y)
                # Sum over the rows / global batch: summed over micro-batches
                # and replicas this is the mean over the global batch.
                loss = tf.reduce_sum(per_example) / global_batch_size
                scaled_loss = optimizer.scale_loss(loss)
            # Dense gradients: embedding IndexedSlices break some all-reduce
            # paths (keras#21069), and their norm counts each token occurrence
            # apart: clipping by it trained SST-2 about 0.8 points worse. Cheap
            # at ALBERT's embedding size.
            grads = [
                tf.convert_to_tensor(g) for g in tape.gradient(scaled_loss, variables)
            ]
            predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
            correct = tf.reduce_sum(tf.cast(tf.equal(predictions, y), tf.float32))
            return grads, loss, correct

        def replica_step(batches, stop_requests):
            grads, loss, correct = micro_step(*batches[0])
            for x, y in batches[1:]:
                # After the previous micro-batch's backward pass, so that one
                # micro-batch's activations are held at a time.
                with tf.control_dependencies(grads):
                    more_grads, more_loss, more_correct = micro_step(x, y)
                grads = [a + b for a, b in zip(grads, more_grads, strict=True)]
                loss, correct = loss + more_loss, correct + more_correct
            context = tf.distribute.get_replica_context()
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            if clipnorm:
                # Clip the summed gradient, as one device would (Keras would
                # clip each replica's part). Scaled gradients need a scaled norm.
                scale = optimizer.dynamic_scale if loss_scaled else 1.0
                grads, _ = tf.clip_by_global_norm(grads, clipnorm * scale)
            # The optimizer was built with `summed_gradients=True`: no second
            # all-reduce inside `apply`.
            optimizer.apply(grads, variables)
            # One vector, so one reduction a step; concat also gives each
            # replica its own tensor (`regroup` would merge shared inputs).
            return tf.concat([tf.stack([loss, correct]), stop_requests], axis=0)

        if self.config.strategy.jit_compile:
            replica_step = tf.function(replica_step, jit_compile=True)

        # No autograph: the loops and ifs above run on Python values at trace
        # time, so converting them was only start-up time.
        @tf.function(autograph=False)
        def train_step(iterator, stop_requests):
            """One step; `stop_requests`: this worker's [Ctrl-C, SIGTERM] (0 or 1).

            Returns [loss, correct count, Ctrl-C, SIGTERM], each summed over
            every replica of every worker, so that all workers can stop after
            the same step.
            """
            batches = [next(iterator) for _ in range(accumulation)]
            results = strategy.run(replica_step, args=(batches, stop_requests))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, results, axis=None)

        return train_step

    def _evaluate(self, forward, dataset, label_names):
        return report_from_outputs(*predict_logits(forward, dataset), label_names)

    def _restore(self, manager, fingerprint, total_steps):
        """Restores the newest checkpoint into the run's objects, if there is one.

        Returns:
            `None` for a fresh run, else the checkpoint's run state: `history`,
            `best`, `total_steps`, `wall_time_s` (of the earlier runs; absent
            in old checkpoints) and `eval_pending`.
        """
        restored = manager.restore_latest()
        if restored is None:
            if manager.is_chief:
                self._remove_earlier_outputs()
            return None
        step, state = restored
        check_same_run(state.get("config"), fingerprint, manager.directory)
        before = state.get("total_steps")
        if self.is_chief:
            drop_events_after(os.path.join(self.output_dir, "logs"), step)
        if step >= total_steps:  # The schedule is not used again.
            logger.info(
                "Restored checkpoint at step %d from %s: at or past this run's "
                "%d steps, nothing is left to train",
                step,
                manager.directory,
                total_steps,
            )
            return state
        if before is not None and before != total_steps:
            logger.warning(
                "The run's length changed from %d to %d steps: the learning-rate "
                "schedule (warmup, linear decay to 0) now spans %d steps, so "
                "from step %d on it follows the new schedule.",
                before,
                total_steps,
                total_steps,
                step,
            )
        logger.info(
            "Restored checkpoint at step %d of %d from %s; resuming",
            step,
            total_steps,
            manager.directory,
        )
        return state

    def _remove_earlier_outputs(self):
        """A run that starts over (no checkpoint) removes the model, reports
        and TensorBoard logs an earlier run left, which would otherwise pass
        for its own."""
        removed = []
        for name in (*OUTPUT_FILES, "logs"):
            path = os.path.join(self.output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
            else:
                continue
            removed.append(name)
        if removed:
            logger.info(
                "Starting a new run in %s (no checkpoint): removed the earlier "
                "run's %s",
                self.output_dir,
                ", ".join(removed),
            )

    # === The run ===

    def train(self):
        """Runs (or resumes) training; writes the outputs.

        One run at a time writes to an output directory: a second one started
        meanwhile (a restarted job whose first is still stopping) is refused.

        Returns:
            The `metrics.json` content as a dict.
        """
        with contextlib.ExitStack() as held:
            return self._train(held)

    def _lock_output_dir(self, held):
        """Holds `OUTPUT/.train.lock` until `train` returns (or the process
        ends). Returns why it cannot, or `None`."""
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, LOCK_FILE)
        try:
            held.enter_context(filelock.FileLock(path, timeout=0))
        except filelock.Timeout:
            return (
                f"Another training run is writing to {self.output_dir} (it holds "
                f"{path}). Wait for it to end, or pass another output directory."
            )
        return None

    def _train(self, held):
        cfg = self.config
        _check_output_dir(self.output_dir)  # Now, not after loading the data.
        keras.utils.set_random_seed(cfg.seed)
        strategy = strategy_lib.make_strategy(cfg.strategy)
        say_onednn_int_notice_quietly()  # Devices are set up now.
        chief = self.is_chief = strategy_lib.is_chief(strategy)
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        static = cfg.strategy.static_shapes or strategy_lib.is_tpu(strategy)
        if cfg.strategy.jit_compile and not static:
            logger.warning(
                "jit_compile with length-bucketed batches compiles one program per "
                "batch shape (about 4x slower than static_shapes=true on CPU in a "
                "tiny run); strategy.static_shapes=true pads every batch to one "
                "shape."
            )
        policy = strategy_lib.mixed_precision_policy(cfg.strategy, strategy)
        global_batch = cfg.training.global_batch_size
        accumulation = cfg.training.gradient_accumulation_steps
        if global_batch % (strategy.num_replicas_in_sync * accumulation):
            split = f"the {strategy.num_replicas_in_sync} replicas"
            if accumulation > 1:
                split += (
                    f" x {accumulation} micro-batches "
                    "(training.gradient_accumulation_steps)"
                )
            raise ValueError(
                f"config key 'training.global_batch_size': {global_batch} is not "
                f"divisible by {split}"
            )

        train_data, dev_data, vocabulary = self._read_data()
        label_names = vocabulary.names
        total_steps = self._total_steps(len(train_data))
        logger.info(
            "Training on %d examples (%d classes: %s), %d steps of %d",
            len(train_data),
            len(label_names),
            ", ".join(label_names[:10]),
            total_steps,
            global_batch,
        )
        class_weights = self._class_weights(train_data.labels, vocabulary)
        by_name = None
        if class_weights is not None:
            by_name = dict(zip(label_names, class_weights, strict=True))
            logger.info(
                "Class weights (training.class_weights): %s",
                ", ".join(f"{name} {weight:.4g}" for name, weight in by_name.items()),
            )
        model, optimizer, step = self._build(
            strategy, policy, label_names, train_data.text_pairs, total_steps
        )
        preprocessor = model.preprocessor

        # --- Resume from the newest checkpoint, if any ---
        objects = {"model": model, "optimizer": optimizer, "step": step}
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            # The loss scale apart from the optimizer, so that a run resumes
            # with or without it (`mixed_precision: true` is float16 on a GPU,
            # bfloat16 elsewhere).
            objects["optimizer"] = optimizer.inner_optimizer
            objects["loss_scale"] = tf.train.Checkpoint(
                dynamic_scale=optimizer.dynamic_scale,
                step_counter=optimizer.step_counter,
            )
        # Dropout's random state is not among the model's checkpointed
        # weights; without it a resumed run draws other masks.
        random_states = _random_states(model)  # Empty without dropout.
        if random_states:
            objects["dropout_rng"] = random_states
        manager, refused = self._checkpoint_manager(held, objects, multi_worker)
        fingerprint = resume_fingerprint(cfg)
        # The same file name with other rows must not resume either.
        fingerprint["data.train (sha256 of its contents)"] = file_digest(cfg.data.train)
        state = self._restore(manager, fingerprint, total_steps)
        resumed = state is not None
        state = state or {}
        history = state.get("history", {"train": [], "eval": []})
        best = state.get("best")
        # Of earlier runs, up to their last checkpoint (None: not recorded).
        earlier_wall_time = state.get("wall_time_s") if resumed else 0.0
        eval_pending = state.get("eval_pending", False)  # Stopped before its eval.
        _seed_replicas_apart(strategy, random_states)
        start_step = int(step.numpy())
        best_key = cfg.training.best_metric
        patience = cfg.training.early_stopping_patience

        # From the checkpointed history, unlike Keras's `EarlyStopping`,
        # whose counter a resumed run would lose.
        def patience_spent():
            return (
                patience is not None
                and best is not None
                and _evals_since_best(history, best) >= patience
            )

        if multi_worker:
            digest = fingerprint["data.train (sha256 of its contents)"]
            check_workers_agree(
                strategy, cfg, digest, start_step, total_steps, refused=refused
            )
        if resumed and (start_step >= total_steps or patience_spent()):
            finished = self._finished_metrics(start_step, multi_worker)
            if finished is not None:
                return finished
        if resumed and chief and best is not None and best["step"] == start_step:
            # A new best is checkpointed before `model.keras` is written: a
            # kill in between leaves the file a step behind. (A finished
            # run's report, written last, vouches for its model.)
            self._save_model(model, policy)

        iterator = self._train_iterator(
            strategy, train_data, preprocessor, static, start_step, total_steps
        )
        dev_dataset = None
        if dev_data is not None:
            dev_dataset = data_pipeline.eval_dataset(
                dev_data,
                preprocessor,
                cfg.training.eval_batch_size,
                static_shapes=static,
            )
        train_step = self._make_train_step(
            model, optimizer, strategy, global_batch, class_weights
        )
        forward = inference_function(model, static_shapes=static)

        os.makedirs(self.output_dir, exist_ok=True)
        if chief:
            self._write_config()
        writers = self._summary_writers(chief)
        progbar = progress_display(total_steps, cfg.training.verbose if chief else 0)
        if start_step:
            progbar.update(start_step)

        # --- The loop: step, log, evaluate, checkpoint ---
        eval_every = cfg.training.eval_every_steps
        window_loss, window_correct, window_steps = 0.0, 0.0, 0
        started = time.perf_counter()
        steady_start = None
        eval_seconds = 0.0
        current = start_step
        saved_step = start_step if resumed else None  # Of the newest checkpoint.

        def run_eval():
            nonlocal best, eval_seconds
            eval_started = time.perf_counter()
            report = self._evaluate(forward, dev_dataset, label_names)
            metrics = ("loss", "accuracy", "macro_f1")
            entry = {"step": current, **{key: report[key] for key in metrics}}
            history["eval"].append(entry)
            _log_entry(writers["dev"], entry)
            logger.info(
                "Step %d dev: loss %.4f accuracy %.4f macro F1 %.4f",
                current,
                entry["loss"],
                entry["accuracy"],
                entry["macro_f1"],
            )
            improved = _better(entry, best, best_key)
            if multi_worker:  # All checkpoint together, or the save would hang.
                improved = strategy_lib.any_worker(strategy, improved)
            if improved:
                best = dict(entry, report=report)
                # The checkpoint first: a run killed before `model.keras` is
                # written resumes at this step and writes it then (below).
                if saved_step != current:
                    save_checkpoint(eval_pending=False)
                if chief:
                    self._save_model(model, policy)
            if steady_start is not None:
                eval_seconds += time.perf_counter() - eval_started

        def stop_early():
            """Whether patience ends the run after this step's dev evaluation.

            Every worker of a cluster evaluates and decides: they stop if any
            does, or one would wait forever in the next step's all-reduce.
            """
            nonlocal stopped_early
            if patience is None or current >= total_steps:
                return False
            stopped_early = patience_spent()
            if multi_worker:
                stopped_early = strategy_lib.any_worker(strategy, stopped_early)
            if stopped_early:
                logger.info(
                    "Stopping early at step %d of %d: step %d's dev %s of %.4f is "
                    "unbeaten after %d more evaluation%s "
                    "(training.early_stopping_patience)",
                    current,
                    total_steps,
                    best["step"],
                    best_key.replace("_", " "),
                    best[best_key],
                    patience,
                    "" if patience == 1 else "s",
                )
            return stopped_early

        def save_checkpoint(eval_pending):
            nonlocal saved_step
            saved_step = current
            for writer in writers.values():
                writer.flush()  # Logs as far as the checkpoint, at least.
            manager.save(
                current,
                {
                    "history": history,
                    "best": best,
                    "config": fingerprint,
                    "total_steps": total_steps,
                    "wall_time_s": _plus(
                        earlier_wall_time, time.perf_counter() - started
                    ),
                    "eval_pending": eval_pending,
                },
            )

        # A run resumed after its early stop (the checkpoints of one run, so
        # every worker agrees) does not go on.
        stopped_early = patience_spent()
        if eval_pending and dev_dataset is not None:
            run_eval()
            if stop_early():
                save_checkpoint(eval_pending=False)
        with DeferredStop() as stop:
            while current < total_steps and not stopped_early:
                if (current + 1) % cfg.training.log_every_steps == 0 or (
                    current + 1 == total_steps
                ):  # The rate this step trains at; after it, the next one's.
                    rate = float(optimizer.learning_rate)
                totals = train_step(iterator, stop.requests()).numpy()
                loss, correct, interrupts, terminations = totals
                current = int(step.assign_add(1).numpy())
                # Workers stop together, on the step that carried a request;
                # one process stops after the step a signal came in. A step
                # that ends the run finishes it as usual.
                requested = (
                    interrupts + terminations > 0
                    if multi_worker
                    else stop.signum is not None
                )
                stopping = requested and current < total_steps
                window_loss += float(loss)
                window_correct += float(correct)
                window_steps += 1
                if (
                    current % cfg.training.log_every_steps == 0
                    or current == total_steps
                ):
                    entry = {
                        "step": current,
                        "loss": window_loss / window_steps,
                        "accuracy": window_correct / (window_steps * global_batch),
                        "learning_rate": rate,
                    }
                    history["train"].append(entry)
                    _log_entry(writers["train"], entry)
                    progbar.update(
                        current,
                        values=[
                            ("loss", entry["loss"]),
                            ("accuracy", entry["accuracy"]),
                            ("lr", entry["learning_rate"]),
                        ],
                    )
                    window_loss, window_correct, window_steps = 0.0, 0.0, 0
                    if steady_start is None:  # After tracing/compilation.
                        steady_start = (current, time.perf_counter())
                eval_due = dev_dataset is not None and (
                    (eval_every and current % eval_every == 0) or current == total_steps
                )
                checkpoint_due = (
                    current % cfg.training.checkpoint_every_steps == 0
                    or current == total_steps
                    or stopping
                )
                if eval_due or checkpoint_due:
                    progbar.end_line()  # Their log lines start lines of their own.
                if eval_due and stopping:  # Checkpoint first: grace periods are short.
                    logger.info(
                        "The step-%d dev evaluation will run when training resumes",
                        current,
                    )
                elif eval_due:
                    run_eval()
                    checkpoint_due |= stop_early()  # So that a rerun knows.
                if checkpoint_due and saved_step != current:
                    save_checkpoint(eval_pending=bool(eval_due and stopping))
                if stopping:
                    stop.raise_after_checkpoint(
                        current, terminations > 0, manager.directory
                    )
        elapsed = time.perf_counter() - started
        steady_rate = None
        if steady_start is not None and current > steady_start[0]:
            # Training steps only: dev evaluation time is taken out.
            steady_rate = (
                (current - steady_start[0])
                * global_batch
                / (time.perf_counter() - steady_start[1] - eval_seconds)
            )

        # --- Final model and reports ---
        if dev_dataset is None and chief:
            self._save_model(model, policy)
        elif dev_dataset is not None and best is None:
            run_eval()
        for writer in writers.values():
            writer.flush()
        steps_run = current - start_step
        result = {
            "steps": current,
            "total_steps": total_steps,
            "stopped_early": current < total_steps,
            "resumed_from_step": start_step if resumed else None,
            "steps_this_run": steps_run,
            "wall_time_s": elapsed,
            # With the runs this one resumed (up to their last checkpoint).
            "total_wall_time_s": _plus(earlier_wall_time, elapsed),
            "train_examples_per_s": steps_run * global_batch / elapsed
            if steps_run
            else None,
            # From the first log line on (no tracing), without dev evaluation.
            "steady_train_examples_per_s": steady_rate,
            "num_replicas": strategy.num_replicas_in_sync,
            "strategy": type(strategy).__name__,
            "dtype_policy": policy,
            "label_names": label_names,
            "class_weights": by_name,
            "skipped_rows": {
                "train": train_data.skipped,
                "dev": dev_data.skipped if dev_data else 0,
            },
            "best_metric": best_key,
            "best": best,
            "history": history,
        }
        if chief:
            self._write_reports(result)
        logger.info("Done: %d steps; outputs in %s", current, self.output_dir)
        return result

    def _build(self, strategy, policy, label_names, text_pairs, total_steps):
        """The classifier, its optimizer and the step counter, under the scope."""
        cfg = self.config
        preprocessor = build_preprocessor(cfg.model)
        with strategy.scope():
            model = build_classifier(cfg.model, label_names, preprocessor, dtype=policy)
            # Saved with the model: it then refuses inputs of the other kind.
            model.preprocessor.text_pairs = text_pairs is not None
            self.model = model
            optimizer = make_optimizer(
                cfg.optimizer,
                total_steps,
                loss_scale=policy == "mixed_float16",
                summed_gradients=True,
            )
            optimizer.build(model.trainable_variables)
            step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        return model, optimizer, step

    def _checkpoint_manager(self, held, objects, multi_worker):
        """The run's checkpoints; the chief first locks the output folder.

        Returns:
            `(manager, refused)`: `refused` says why the folder is another
            run's (the other workers of a cluster learn it in
            `check_workers_agree`; a single process raises at once).
        """
        refused = None
        if self.is_chief:  # Only the chief writes to the output directory.
            refused = self._lock_output_dir(held)
            if refused and not multi_worker:
                raise ValueError(refused)
        writer = self.is_chief and not refused
        manager = CheckpointManager(
            os.path.join(self.output_dir, "checkpoints"),
            objects,
            optional=("dropout_rng", "loss_scale"),
            keep=self.config.training.keep_checkpoints,
            is_chief=writer,
        )
        if writer:  # Locked: temp files are from killed runs.
            remove_temp_leftovers(self.output_dir, OUTPUT_FILES)
            remove_temp_leftovers(manager.directory)
        return manager, refused

    def _finished_metrics(self, step, multi_worker):
        """A finished run's `metrics.json`, kept as it is; `None` to redo the
        reports (some are missing or of an earlier step, or other workers must
        take part)."""
        done = all(
            os.path.isfile(os.path.join(self.output_dir, name))
            for name in ("metrics.json", "model.keras")
        )
        # Workers of one cluster must take the same path (collectives
        # follow), and only the chief writes these files.
        if done and not multi_worker:
            with open(
                os.path.join(self.output_dir, "metrics.json"), encoding="utf-8"
            ) as f:
                metrics = json.load(f)
            # Not the report of an earlier state (a run that went on from
            # it, then stopped before writing its own).
            if metrics.get("steps") == step:
                logger.info(
                    "Training already finished at step %d; outputs in %s unchanged",
                    step,
                    self.output_dir,
                )
                return metrics
        logger.info("Training already finished at step %d", step)
        return None

    def _train_iterator(
        self, strategy, train_data, preprocessor, static, start_step, total_steps
    ):
        """Batches per replica from `start_step` on, one pipeline per worker."""
        cfg = self.config
        global_batch = cfg.training.global_batch_size

        accumulation = cfg.training.gradient_accumulation_steps

        def dataset_fn(context):
            # Batches a step takes from each pipeline.
            per_pipeline = (
                context.num_replicas_in_sync // context.num_input_pipelines
            ) * accumulation
            return data_pipeline.train_dataset(
                train_data,
                preprocessor,
                context.get_per_replica_batch_size(global_batch) // accumulation,
                seed=cfg.seed,
                shuffle_buffer=cfg.data.shuffle_buffer,
                static_shapes=static,
                bucket_boundaries=cfg.data.bucket_boundaries,
                num_shards=context.num_input_pipelines,
                shard_index=context.input_pipeline_id,
                skip_batches=start_step * per_pipeline,
                cache=total_steps * global_batch > len(train_data),
            )

        return iter(strategy.distribute_datasets_from_function(dataset_fn))

    def _summary_writers(self, chief):
        """TensorBoard writers for `logs/train` and `logs/dev` (chief only)."""
        splits = ("train", "dev")
        if not chief:
            return {split: tf.summary.create_noop_writer() for split in splits}
        return {
            split: tf.summary.create_file_writer(
                os.path.join(self.output_dir, "logs", split)
            )
            for split in splits
        }

    def _write_reports(self, result):
        """Loss/accuracy curves, the dev confusion matrix, then `metrics.json`,
        which marks the run finished (a crash before it redoes them all)."""
        history, best = result["history"], result["best"]
        label_names = result["label_names"]
        metrics_lib.plot_curves(history, os.path.join(self.output_dir, "curves.png"))
        if best is not None:
            metrics_lib.plot_confusion_matrix(
                best["report"]["confusion_matrix"],
                label_names,
                os.path.join(self.output_dir, "confusion_matrix.png"),
                title=f"Dev confusion matrix (step {best['step']})",
            )
        metrics_lib.write_json_atomic(
            os.path.join(self.output_dir, "metrics.json"), result
        )

    def _write_config(self):
        # The folder used (`--output` may differ from the file's), so that
        # `train --config OUTPUT/config.yaml` resumes this run.
        config = dataclasses.replace(self.config, output_dir=self.output_dir)
        text = yaml.safe_dump(config.to_dict(), sort_keys=False)
        write_text(os.path.join(self.output_dir, "config.yaml"), text)

    def _save_model(self, model, policy):
        """Saves `model.keras` in float32 (mixed-precision runs are rebuilt)."""
        path = os.path.join(self.output_dir, "model.keras")
        if policy != "float32":
            model = _float32_copy(model)
        save_model_atomic(model, path)
        logger.info("Saved model %s", path)


def _check_output_dir(path):
    """Fails, naming it, if a file stands where the output folder goes."""
    ancestor = os.path.abspath(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise NotADirectoryError(
            f"Cannot write outputs to '{path}': '{ancestor}' is a file, not a folder."
        )


def train(config, output_dir=None, overrides=None):
    """Trains from a config (a `TrainConfig`, a YAML path or a dict); see `Trainer`.

    Args:
        config: `TrainConfig`, str path of a YAML config, or a dict with a
            config's keys (paths in it are relative to the working directory).
        output_dir: str. Overrides the config's `output_dir`.
        overrides: dict of dotted key -> value, for a YAML path or a dict.

    Returns:
        The `metrics.json` content as a dict.
    """
    if isinstance(config, dict):
        config = load_config(data=config, overrides=overrides)
    elif not hasattr(config, "training"):
        config = load_config(config, overrides=overrides)
    return Trainer(config, output_dir=output_dir).train()


def _plus(earlier, seconds):
    return None if earlier is None else earlier + seconds
