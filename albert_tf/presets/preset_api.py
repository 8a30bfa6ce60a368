"""`from_preset`, `save_to_preset` and `presets` for albert_tf's classes.

The base classes (`Backbone`, `Tokenizer`, `Preprocessor`, `Task`) inherit a
mixin from here. Loading a preset resolves the handle to a local directory,
picks the loader for its format and builds the ALBERT class, so
`albert_tf.models.Backbone.from_preset(...)` and
`albert_tf.models.TextClassifier.from_preset(...)` infer the class from the
preset itself.
"""

import inspect
import logging

from albert_tf.presets.builtin_presets import BUILTIN_PRESETS
from albert_tf.presets.handles import resolve_preset
from albert_tf.presets.preset_loaders import loader_for_directory

logger = logging.getLogger(__name__)


def _albert_classes():
    # Late import: the model modules import this one through their bases.
    from albert_tf import models

    return {
        "backbone": models.AlbertBackbone,
        "tokenizer": models.AlbertTokenizer,
        "preprocessor": models.AlbertTextClassifierPreprocessor,
        "task": models.AlbertTextClassifier,
    }


def _target_class(cls, role):
    """`cls` itself, or the ALBERT class when `cls` is a generic base."""
    albert_cls = _albert_classes()[role]
    if issubclass(albert_cls, cls):
        return albert_cls
    raise ValueError(
        f"`{cls.__name__}.from_preset()` cannot load an ALBERT preset: its "
        f"{role} is an `{albert_cls.__name__}`."
    )


# Keras's own constructor arguments, which every class takes.
_KERAS_KWARGS = {"name", "dtype", "trainable"}


def _check_kwargs(target, kwargs, extra=()):
    """Keras models swallow unknown kwargs; a typo here must not pass."""
    params = inspect.signature(target.__init__).parameters
    allowed = (set(params) - {"self", "args", "kwargs"}) | _KERAS_KWARGS | set(extra)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(
            f"{target.__name__}.from_preset() got unexpected keyword "
            f"argument(s) {unknown}; it takes {sorted(allowed)}."
        )


def _builtin_backbone_config(preset):
    """The table config of a built-in id, when it is not a local directory."""
    import os

    if preset in BUILTIN_PRESETS and not os.path.isdir(preset):
        return dict(BUILTIN_PRESETS[preset]["config"])
    return None


def _loader(preset):
    return loader_for_directory(resolve_preset(preset))


def load_backbone(cls, preset, load_weights=True, loader=None, **kwargs):
    """Builds a backbone; a built-in id without weights needs no download."""
    target = _target_class(cls, "backbone")
    _check_kwargs(target, kwargs)
    config = None if loader else _builtin_backbone_config(preset)
    if config is None or load_weights:
        loader = loader or _loader(preset)
        config = loader.backbone_config()
    backbone = target(**{**config, **kwargs})
    if load_weights:
        loader.load_backbone_weights(backbone)
    return backbone


def load_tokenizer(cls, preset, loader=None, **kwargs):
    """Builds a tokenizer from the preset's vocabulary and flags."""
    target = _target_class(cls, "tokenizer")
    _check_kwargs(target, kwargs)
    loader = loader or _loader(preset)
    # A vocabulary given replaces the preset's (maybe missing) one; the
    # preset's text switches still apply.
    config = loader.tokenizer_config(vocabulary=kwargs.get("proto"))
    return target(**{**config, **kwargs})


def load_preprocessor(cls, preset, loader=None, **kwargs):
    """Builds a preprocessor and, unless one is passed, its tokenizer."""
    target = _target_class(cls, "preprocessor")
    _check_kwargs(target, kwargs)
    loader = loader or _loader(preset)
    tokenizer = kwargs.pop("tokenizer", None) or load_tokenizer(
        target.tokenizer_cls, preset, loader=loader
    )
    return target(tokenizer=tokenizer, **{**loader.preprocessor_config(), **kwargs})


def load_task(cls, preset, load_weights=True, **kwargs):
    """Builds a classifier; kwargs override the preset (`num_classes`, ...)."""
    target = _target_class(cls, "task")
    _check_kwargs(target, kwargs, extra=("sequence_length", "compile"))
    builtin_config = _builtin_backbone_config(preset)
    needs_files = (
        load_weights
        or builtin_config is None
        or (kwargs.get("preprocessor", "load") == "load")
    )
    loader = _loader(preset) if needs_files else None

    backbone = kwargs.pop("backbone", None)
    # As in keras-hub, `dtype` goes to the backbone; the head follows it.
    backbone_kwargs = {"dtype": kwargs.pop("dtype")} if "dtype" in kwargs else {}
    if backbone is None:
        backbone = load_backbone(
            target.backbone_cls,
            preset,
            load_weights=load_weights,
            loader=loader,
            **backbone_kwargs,
        )
    preset_preprocessor = "preprocessor" not in kwargs
    if not preset_preprocessor:
        preprocessor = kwargs.pop("preprocessor")
    else:
        preprocessor_kwargs = {}
        if "sequence_length" in kwargs:
            preprocessor_kwargs["sequence_length"] = kwargs.pop("sequence_length")
        preprocessor = load_preprocessor(
            target.preprocessor_cls, preset, loader=loader, **preprocessor_kwargs
        )

    head = (loader.task_config() if loader else None) or {}
    if "num_classes" not in kwargs and "num_classes" not in head:
        raise ValueError(
            f"Preset '{preset}' has no classification head (a backbone "
            "preset): fine-tune one first (`albert-tf train` with "
            "`model.preset`), or pass `num_classes=` for a new, untrained head."
        )
    new_head = "num_classes" in kwargs and kwargs["num_classes"] != head.get(
        "num_classes"
    )
    if new_head and head:
        logger.warning(
            "num_classes=%s differs from the preset's %s: its trained head "
            "and label names are dropped, and a new head is initialised.",
            kwargs["num_classes"],
            head.get("num_classes"),
        )
        head.pop("label_names", None)
    if new_head and preset_preprocessor and preprocessor is not None:
        # A new head is trained afresh: on single texts or on pairs,
        # whatever the preset's model was trained on.
        preprocessor.text_pairs = None
    keep_head = load_weights and head and not new_head
    order = _head_order(head.get("label_names"), kwargs) if keep_head else None
    task = target(backbone=backbone, preprocessor=preprocessor, **{**head, **kwargs})
    if keep_head:
        loader.load_task_weights(task)
        if order is not None:  # The same classes, listed in another order.
            kernel, bias = task.output_dense.get_weights()
            task.output_dense.set_weights([kernel[:, order], bias[order]])
    return task


def _is_placeholder(names):
    """Names a checkpoint gets when nobody named its classes (HF: LABEL_0...)."""
    return all(n in (str(i), f"LABEL_{i}") for i, n in enumerate(names))


def _head_order(trained, kwargs):
    """Head rows for `kwargs["label_names"]`, when they reorder `trained`.

    `None` keeps the rows as they are. Names all new to the trained head
    keep them too, with a warning: the classes are only renamed. Names that
    share some with it, but not all, would give a known class another's row:
    an error.
    """
    wanted = kwargs.get("label_names")
    if not trained or wanted is None or list(wanted) == list(trained):
        return None
    if sorted(wanted) == sorted(trained) and len(set(trained)) == len(trained):
        logger.info(
            "label_names %s reorder the preset's %s: its head follows.",
            list(wanted),
            list(trained),
        )
        return [list(trained).index(name) for name in wanted]
    if set(wanted) & set(trained):
        raise ValueError(
            f"label_names {list(wanted)} share some names with the preset's "
            f"{list(trained)}, but not all: its head's rows would mean other "
            "classes. Pass the preset's names in any order, or other "
            "`num_classes` for a new head."
        )
    if not _is_placeholder(trained):
        logger.warning(
            "label_names %s are not the preset's %s: its trained head is kept, "
            "and its classes are renamed in order. Fine-tune it, or pass the "
            "preset's names (in any order) to keep their meaning.",
            list(wanted),
            list(trained),
        )
    return None


def builtin_presets():
    """Built-in preset ids -> metadata (description, params) and handle."""
    return {
        name: {
            "metadata": dict(entry["metadata"]),
            "config": dict(entry["config"]),
            "kaggle_handle": entry["kaggle_handle"],
        }
        for name, entry in BUILTIN_PRESETS.items()
    }


class classproperty:
    """A read-only property of the class (`AlbertBackbone.presets`)."""

    def __init__(self, getter):
        self.getter = getter

    def __get__(self, instance, owner):
        return self.getter(owner)


class BackbonePresetMixin:
    """`from_preset`, `save_to_preset` and `presets` for backbones."""

    presets = classproperty(lambda cls: builtin_presets())

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Builds a backbone from a preset.

        Args:
            preset: str. A built-in id (see `cls.presets`),
                `kaggle://owner/model/framework/variation[/version]`,
                `hf://owner/repo`, or a local directory (albert_tf,
                keras-hub, Hugging Face or original Google ALBERT layout).
            load_weights: bool. `False` gives a randomly initialised model of
                the preset's config.
            **kwargs: override config values (e.g. `dropout=0.1`).

        Example:
        ```python
        backbone = albert_tf.models.AlbertBackbone.from_preset(
            "albert_base_en_uncased"
        )
        ```
        """
        return load_backbone(cls, preset, load_weights=load_weights, **kwargs)

    def save_to_preset(self, preset_dir):
        """Writes `config.json`, `metadata.json` and `model.weights.h5`; a
        classifier head already in `preset_dir` (of another backbone) goes."""
        from albert_tf.presets import preset_saver

        preset_saver.remove_task(preset_dir)
        preset_saver.save_backbone(self, preset_dir)


class TokenizerPresetMixin:
    """`from_preset`, `save_to_preset` and `presets` for tokenizers."""

    presets = classproperty(lambda cls: builtin_presets())

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """Builds a tokenizer from a preset's vocabulary (see `Backbone`)."""
        return load_tokenizer(cls, preset, **kwargs)

    def save_to_preset(self, preset_dir):
        """Writes `tokenizer.json` and `assets/tokenizer/vocabulary.spm`."""
        from albert_tf.presets import preset_saver

        preset_saver.save_tokenizer(self, preset_dir)


class PreprocessorPresetMixin:
    """`from_preset`, `save_to_preset` and `presets` for preprocessors."""

    presets = classproperty(lambda cls: builtin_presets())

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """Builds a preprocessor (and its tokenizer) from a preset.

        Args:
            preset: str. See `Backbone.from_preset`.
            **kwargs: override config values (e.g. `sequence_length=128`).
        """
        return load_preprocessor(cls, preset, **kwargs)

    def save_to_preset(self, preset_dir):
        """Writes `preprocessor.json` and the tokenizer's files."""
        from albert_tf.presets import preset_saver

        preset_saver.save_preprocessor(self, preset_dir)


class TaskPresetMixin:
    """`from_preset`, `save_to_preset` and `presets` for task models."""

    presets = classproperty(lambda cls: builtin_presets())

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Builds a classifier (backbone, head, preprocessor) from a preset.

        A preset with a head (an albert_tf/keras-hub `task.json`, a Hugging
        Face `AlbertForSequenceClassification`) gives a ready classifier with
        its label names; otherwise pass `num_classes`, and a new head is
        initialised.

        Args:
            preset: str. See `Backbone.from_preset`.
            load_weights: bool. `False` gives random weights.
            **kwargs: override arguments: `num_classes`, `preprocessor=None`,
                `sequence_length`, `activation`, `dropout`, `label_names`,
                `dtype` (the backbone's, which the head follows).

        Example:
        ```python
        classifier = albert_tf.models.AlbertTextClassifier.from_preset(
            "hf://textattack/albert-base-v2-SST-2"
        )
        classifier.predict(["What an amazing movie!"])
        ```
        """
        return load_task(cls, preset, load_weights=load_weights, **kwargs)

    def save_to_preset(self, preset_dir):
        """Writes the task, backbone and preprocessor files."""
        from albert_tf.presets import preset_saver

        preset_saver.save_task(self, preset_dir)
