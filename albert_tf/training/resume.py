"""What makes a rerun the same run: settings a resumed (or multi-worker) run
must share, and TensorBoard events to drop after a crash."""

import copy
import dataclasses
import hashlib
import json
import logging
import os

import tensorflow as tf

from albert_tf.training.config import PATH_KEYS

logger = logging.getLogger(__name__)


# Settings a rerun may change and still continue the same run.
RESUMABLE_CHANGES = (
    "output_dir",
    "data.skip_bad_rows",
    "training.steps",
    "training.epochs",
    "training.eval_batch_size",
    "training.log_every_steps",
    "training.eval_every_steps",
    "training.early_stopping_patience",
    "training.checkpoint_every_steps",
    "training.keep_checkpoints",
    "training.verbose",
    "strategy.",  # Resuming on other hardware is fine.
)


def flatten_config(config):
    """A config's settings as `{dotted.key: value}`; a mapping value (such as
    `training.class_weights`) stays whole, so that adding one shows."""
    flat = {}

    def walk(prefix, section):
        for field in dataclasses.fields(section):
            value = getattr(section, field.name)
            if dataclasses.is_dataclass(value):
                walk(f"{prefix}{field.name}.", value)
            else:
                flat[prefix + field.name] = copy.deepcopy(value)

    walk("", config)
    return flat


def resume_fingerprint(config):
    """The config's settings that a resumed run must share, as dotted keys."""
    flat = flatten_config(config)
    kept = {
        k: v
        for k, v in flat.items()
        if not any(
            k == c or (c.endswith(".") and k.startswith(c)) for c in RESUMABLE_CHANGES
        )
    }
    return json.loads(json.dumps(kept))  # Tuples as lists, as state.json has them.


def drop_events_after(log_dir, step):
    """Removes TensorBoard events past `step`, which a resumed run logs again.

    After a crash, the event files may hold steps past the last checkpoint;
    without this, TensorBoard draws those steps twice.
    """
    from tensorflow.core.util import event_pb2

    for root, _, names in os.walk(log_dir):
        for name in names:
            if "tfevents" not in name:
                continue
            path = os.path.join(root, name)
            kept, dropped = [], 0
            try:
                for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                    event = event_pb2.Event.FromString(record)
                    if event.HasField("summary") and event.step > step:
                        dropped += 1
                    else:
                        kept.append(record)
            except tf.errors.DataLossError:  # A record cut short by the crash.
                dropped += 1
            if not dropped:
                continue
            tmp = os.path.join(root, f".tmp-{name}")  # Not read by TensorBoard.
            with tf.io.TFRecordWriter(tmp) as writer:
                for record in kept:
                    writer.write(record)
            os.replace(tmp, path)
            logger.info(
                "Dropped %d TensorBoard events past step %d from %s",
                dropped,
                step,
                path,
            )


def file_digest(path):
    """A short sha256 of a file's bytes (the same name with other rows differs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def check_workers_agree(strategy, config, data_digest, step, total_steps, refused=None):
    """Refuses a cluster whose workers would not train one model together.

    Other settings (paths aside: machines mount data elsewhere), other data,
    or another start step (a worker that resumed from its own, empty output
    folder) would average gradients of different runs, or hang collectives.
    `refused`: why the chief cannot write its output folder, or `None`; every
    worker then fails with it instead of waiting for the chief.
    """
    shared = {
        k: v
        for k, v in flatten_config(config).items()
        if k not in PATH_KEYS and k != "training.verbose"
    }
    shared.update(data=data_digest, step=step, total_steps=total_steps)
    digest = hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).digest()
    mine = tf.constant(
        [int.from_bytes(digest[:4], "little"), step, refused is not None], tf.int64
    )
    everyone = strategy.gather(strategy.run(lambda: mine[None]), axis=0).numpy()
    if everyone[:, 2].any():
        raise ValueError(
            refused
            or "The chief's output folder is in use by another training run; "
            "see the chief's log."
        )
    if (everyone != everyone[0]).any():
        raise ValueError(
            "The workers disagree on the run: settings or data (hashes "
            f"{sorted(set(everyone[:, 0].tolist()))}) or start step (steps "
            f"{sorted(set(everyone[:, 1].tolist()))}). Give every worker the "
            "same config, data and overrides, and one output folder on a "
            "shared filesystem (only the chief writes checkpoints; the others "
            "resume from them)."
        )


def check_same_run(saved, current, directory):
    """Refuses to resume a checkpoint written with other settings."""
    if saved is None:  # Checkpoints from before fingerprints were kept.
        return
    # Keys the checkpoint's version did not record are not compared.
    changed = [k for k in sorted(saved) if saved.get(k) != current.get(k)]
    if changed:
        shown = "; ".join(
            f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed[:4]
        )
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise ValueError(
            f"Cannot resume from {directory}: its run used other settings "
            f"({shown}{more}). Pass another output directory, or delete "
            f"{directory} to start over."
        )
