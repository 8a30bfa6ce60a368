"""Atomic, resumable training checkpoints.

Each checkpoint is a folder `ckpt-<step>` holding a `tf.train.Checkpoint`
(model weights, optimizer state, step counter) and `state.json` (metric
history, data position). It is written under a temporary name and renamed
when complete, so a crash or `kill -9` never leaves a half-written
checkpoint under a final name; resuming picks the newest complete one.
"""

import json
import logging
import os
import re
import shutil
import tempfile

import tensorflow as tf

from albert_tf.atomic_file import fsync
from albert_tf.atomic_file import open_folder_mode

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^ckpt-(\d+)$")
_REPLACED = ".replaced"  # A checkpoint a save of the same step is replacing.

# Unreadable files, as opposed to a checkpoint of another model. A data file
# cut short raises IndexError ("Read less bytes than requested").
_DAMAGED_ERRORS = (
    IndexError,
    tf.errors.DataLossError,
    tf.errors.NotFoundError,
    tf.errors.OutOfRangeError,
)


class CheckpointManager:
    """Saves, lists, prunes and restores checkpoints in one folder.

    Args:
        directory: str. The checkpoint folder.
        objects: dict of name -> what to save and restore (a model,
            optimizer, variable, list of variables).
        optional: names in `objects` that a checkpoint may lack (older
            versions; the loss scale of another precision); those start
            afresh, with a warning.
        keep: int. How many of the newest checkpoints to keep.
        is_chief: bool. Only the chief writes to `directory`; other
            multi-worker processes write to a temp folder (the save may need
            them) and delete it.
    """

    def __init__(self, directory, objects, optional=(), keep=2, is_chief=True):
        self.directory = directory
        self.objects = objects
        self.optional = optional
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.keep = keep
        self.is_chief = is_chief

    def steps(self):
        """Steps of the complete checkpoints, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        found = (_NAME.match(name) for name in os.listdir(self.directory))
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, step):
        return os.path.join(self.directory, f"ckpt-{step:08d}")

    def save(self, step, state):
        """Writes checkpoint `step` with JSON `state`, atomically."""
        parent = self.directory if self.is_chief else None
        if parent:
            os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".tmp-ckpt-{step}-", dir=parent)
        os.chmod(tmp, open_folder_mode())
        try:
            self.checkpoint.write(os.path.join(tmp, "ckpt"))
            with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as f:
                json.dump(state, f)
            if not self.is_chief:
                return None
            final = self.path(step)
            for name in os.listdir(tmp):  # On disk before the rename.
                fsync(os.path.join(tmp, name))
            replaced = final + _REPLACED
            if os.path.exists(final):  # Set aside, not deleted before the rename:
                os.rename(final, replaced)  # `_recover` puts it back after a kill.
            os.rename(tmp, final)
            fsync(self.directory)
            shutil.rmtree(replaced, ignore_errors=True)
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        for old in self.steps()[: -self.keep]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        logger.info("Saved checkpoint %s", final)
        return final

    def restore_latest(self):
        """Restores the newest readable checkpoint.

        A damaged one (files cut short by a crash or a full disk) is skipped
        with a warning, for the one before it.

        Returns:
            `(step, state)`, or `None` when there is no checkpoint.
        """
        if self.is_chief:
            self._recover()
        steps = self.steps()
        damaged = []
        for step in reversed(steps):
            path = self.path(step)
            try:
                return step, self._restore(path)
            except _Damaged as e:
                damaged.append(path)
                aside = os.path.join(
                    self.directory, f".damaged-{os.path.basename(path)}"
                )
                if self.is_chief:  # Out of the way of pruning and resuming.
                    shutil.rmtree(aside, ignore_errors=True)
                    os.rename(path, aside)
                logger.warning(
                    "Checkpoint %s is damaged (%s)%s; trying the one before it.",
                    path,
                    e,
                    f", moved to {aside}" if self.is_chief else "",
                )
        if damaged:
            raise ValueError(
                f"Cannot resume: every checkpoint in {self.directory} is damaged "
                f"({', '.join(os.path.basename(p) for p in damaged)}). Delete "
                f"{self.directory} to start over."
            )
        return None

    def _recover(self):
        """Puts back a checkpoint set aside by a save that replaced it and
        was killed before its new one took the name."""
        if not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if not name.endswith(_REPLACED):
                continue
            aside = os.path.join(self.directory, name)
            final = aside.removesuffix(_REPLACED)
            if os.path.exists(final):
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(aside, final)

    def _restore(self, path):
        try:
            with open(os.path.join(path, "state.json"), encoding="utf-8") as f:
                state = json.load(f)
        except (FileNotFoundError, ValueError) as e:  # ValueError: bad JSON.
            raise _Damaged(f"state.json: {e}") from None
        prefix = os.path.join(path, "ckpt")
        try:  # An index that cannot be listed is damaged, whatever the model.
            listed = tf.train.list_variables(prefix)
        except tf.errors.PermissionDeniedError:
            raise
        except (tf.errors.OpError, IndexError) as e:
            raise _Damaged(f"ckpt.index: {str(e)[:200]}") from None
        try:
            saved = {name.split("/")[0] for name, _ in listed}
            missing = [n for n in self.optional if n in self.objects and n not in saved]
            checkpoint = self.checkpoint
            if missing:
                logger.warning(
                    "%s has no %s (an older albert_tf or another precision "
                    "wrote it): starting it afresh.",
                    path,
                    ", ".join(missing),
                )
                kept = {k: v for k, v in self.objects.items() if k not in missing}
                checkpoint = tf.train.Checkpoint(**kept)
            status = checkpoint.read(prefix)
            status.assert_existing_objects_matched()
        except _DAMAGED_ERRORS as e:
            raise _Damaged(f"{type(e).__name__}: {str(e)[:200]}") from None
        except (ValueError, AssertionError, tf.errors.OpError) as e:
            if type(e) is tf.errors.OpError:  # No status code: a missing file.
                raise _Damaged(str(e)[:200]) from None
            raise ValueError(
                f"Cannot resume from {path}: it does not fit this model, so it "
                "was probably written with another config. Pass another "
                f"output directory, or delete {self.directory} to start over. "
                f"({type(e).__name__}: {str(e)[:300]})"
            ) from None
        return state


class _Damaged(Exception):
    """A checkpoint's files cannot be read (cut short, missing)."""


def latest_checkpoint_step(directory):
    """The step of the newest complete checkpoint in `directory`, or `None`."""
    steps = CheckpointManager(directory, {}).steps()
    return steps[-1] if steps else None
