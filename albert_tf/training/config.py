"""Training configuration: dataclasses loaded from YAML and validated.

A config file has the sections `model`, `data`, `optimizer`, `training` and
`strategy`, plus `seed` and `output_dir`. Unknown keys and values of the wrong
type are errors that name the key. Relative paths in a config file
(`model.vocabulary`, `data.train`, `data.dev`, `output_dir`) are resolved
relative to the directory of the config file, so a config works from any
working directory; paths given with `--set` or `--output` are relative to the
current directory.
"""

import codecs
import copy
import dataclasses
import itertools
import math
import os
import re
import types
import typing

import yaml

from albert_tf.presets.builtin_presets import BUILTIN_PRESETS


@dataclasses.dataclass
class BackboneConfig:
    """`AlbertBackbone` hyperparameters; `vocabulary_size` is the vocabulary's."""

    num_layers: int = 2
    num_heads: int = 2
    embedding_dim: int = 16
    hidden_dim: int = 16
    intermediate_dim: int = 32
    num_groups: int = 1
    num_inner_repetitions: int = 1
    dropout: float = 0.0
    max_sequence_length: int = 512


@dataclasses.dataclass
class ModelConfig:
    """Which model to train.

    Either `preset` (passed to `AlbertTextClassifier.from_preset`), or
    `backbone` hyperparameters plus a SentencePiece `vocabulary` path for a
    model trained from scratch. With a preset, `vocabulary` replaces the
    preset's, and `lowercase`/`strip_accents` override its tokenizer's flags
    (unset: the preset's own; from scratch: true, as original ALBERT).
    """

    preset: str | None = None
    vocabulary: str | None = None
    backbone: BackboneConfig | None = None
    sequence_length: int = 128
    dropout: float = 0.1
    lowercase: bool | None = None
    strip_accents: bool | None = None


@dataclasses.dataclass
class DataConfig:
    """Labelled text files and how to read them.

    `format` is `auto` (from the extension), `tsv`, `csv`, `jsonl` or
    `tfrecord` (of `tf.train.Example`). Columns are header names, or 0-based
    indices when `header` is false; for JSONL/TFRecord they are keys.
    `text_pair_column` names the second text of sentence-pair tasks; the
    saved model then takes pairs only.
    `label_names` fixes the label vocabulary (ids in this order); without it,
    integer labels are used as ids and name labels are sorted.
    `bucket_boundaries` are the sequence lengths of the length buckets used for
    dynamic padding (`null`: powers of two up to `model.sequence_length`).
    """

    train: str | None = None
    dev: str | None = None
    format: str = "auto"
    header: bool = True
    text_column: str | int = "sentence"
    text_pair_column: str | int | None = None
    label_column: str | int = "label"
    label_names: list[str] | None = None
    skip_bad_rows: bool = False
    shuffle_buffer: int = 10000
    bucket_boundaries: list[int] | None = None


@dataclasses.dataclass
class OptimizerConfig:
    """AdamW with linear warmup then linear decay to zero (ALBERT fine-tuning).

    `warmup_steps` wins over `warmup_ratio` (a fraction of all steps) when set.
    """

    learning_rate: float = 1e-5
    warmup_steps: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clipnorm: float | None = 1.0


@dataclasses.dataclass
class TrainingConfig:
    """Loop length, batch sizes and the cadence of logs, evals and checkpoints.

    `steps` wins over `epochs` when set. `global_batch_size` is split evenly
    over all replicas, and on each into `gradient_accumulation_steps`
    micro-batches run one after another, their gradients summed: the same
    step in less memory (with length buckets, micro-batches are bucketed
    apart). `best_metric` is `accuracy`, `macro_f1` or `loss`
    (lower is better for loss); the saved model is the best one on `data.dev`
    when a dev file is given, the last one otherwise.
    `early_stopping_patience` ends training once that many dev evaluations
    in a row have not beaten the best one (`None`: never). `class_weights`
    weighs each training row's loss by its class: `balanced` (rows /
    (classes x the class's rows), as scikit-learn computes it) or label name
    (or id) -> weight, 1 for classes left out; dev figures stay unweighted
    (as Keras's `class_weight`). `verbose`: 0
    shows no progress; 1 a Keras progress bar on a terminal or in a
    notebook, and a log line every `log_every_steps` where output goes to a
    file or a pipe; 2 log lines always.
    """

    global_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    eval_batch_size: int = 64
    steps: int | None = None
    epochs: float = 1.0
    log_every_steps: int = 50
    eval_every_steps: int | None = None
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 2
    best_metric: str = "accuracy"
    early_stopping_patience: int | None = None
    class_weights: str | dict[str, float] | None = None
    verbose: int = 1


@dataclasses.dataclass
class StrategyConfig:
    """Where to train.

    `name` is `auto` (TPU if `tpu` is set, all workers if `TF_CONFIG` lists
    several, all GPUs if there are several, `num_cpu_devices` logical CPUs
    if more than one, else one device), `default`, `one_device`,
    `mirrored`, `multi_worker` (reads `TF_CONFIG`) or `tpu`.
    `num_cpu_devices` splits the CPU into that many logical devices for
    `mirrored` (must be set before TensorFlow starts).
    `join_timeout_s`: how long a `multi_worker` task waits for every task in
    `TF_CONFIG` to start before it gives up with an error.
    `mixed_precision`: `false`, `true` (bfloat16 on TPU/CPU, float16 on GPU),
    or `mixed_bfloat16`/`mixed_float16`. `static_shapes` forces fixed-size
    batches (always on for TPUs).
    """

    name: str = "auto"
    tpu: str | None = None
    num_cpu_devices: int | None = None
    join_timeout_s: float = 300.0
    mixed_precision: bool | str = False
    jit_compile: bool = False
    static_shapes: bool = False


@dataclasses.dataclass
class TrainConfig:
    """A complete training run."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    strategy: StrategyConfig = dataclasses.field(default_factory=StrategyConfig)
    output_dir: str | None = None
    seed: int = 42

    def to_dict(self):
        return dataclasses.asdict(self)


_CHOICES = {
    "data.format": ("auto", "tsv", "csv", "jsonl", "tfrecord"),
    "training.best_metric": ("accuracy", "macro_f1", "loss"),
    "training.verbose": (0, 1, 2),
    "strategy.name": (
        "auto",
        "default",
        "one_device",
        "mirrored",
        "multi_worker",
        "tpu",
    ),
}
PATH_KEYS = (
    "model.preset",
    "model.vocabulary",
    "data.train",
    "data.dev",
    "output_dir",
)


_BOOLEAN_HINT = " (YAML reads yes, no, on, off as booleans: quote the name)"


def _type_name(tp):
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value, tp, key):
    """Checks `value` against type hint `tp`; builds nested dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise TypeError(f"config key '{key}': expected {_type_name(tp)}, got null")
        others = [option for option in options if option is not type(None)]
        mappings = [o for o in others if typing.get_origin(o) is dict]
        if len(others) == 1 or (isinstance(value, dict) and mappings):
            # The one option that fits: its own error names the inner key.
            return _convert(value, (mappings or others)[0], key)
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except (TypeError, ValueError) as e:
                errors.append(e)
        raise TypeError(
            f"config key '{key}': expected {_type_name(tp)}, got "
            f"{type(value).__name__} {value!r}"
        )
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(
                f"config key '{key}': expected a list, got {type(value).__name__} "
                f"{value!r}"
            )
        (item_type,) = typing.get_args(tp)
        return [_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(
                f"config key '{key}': expected a mapping, got "
                f"{type(value).__name__} {value!r}"
            )
        _, item_type = typing.get_args(tp)
        converted = {}
        for k, v in value.items():
            # Keys name things; YAML reads `0:` as an int, kept as text.
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                hint = ""
                if isinstance(k, bool):
                    hint = _BOOLEAN_HINT
                raise TypeError(
                    f"config key '{key}': expected names as keys, got "
                    f"{type(k).__name__} {k!r}{hint}"
                )
            converted[str(k)] = _convert(v, item_type, f"{key}.{k}")
        return converted
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise TypeError(
                f"config key '{key}': expected a mapping, got {type(value).__name__}"
            )
        return _from_dict(tp, value, key)
    # bool is an int subclass in Python: never accept one for the other.
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads `1e-5` (no dot) as a string; accept it as a float.
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    raise TypeError(
        f"config key '{key}': expected {_type_name(tp)}, got "
        f"{type(value).__name__} {value!r}"
        + (_BOOLEAN_HINT if tp is str and isinstance(value, bool) else "")
    )


def _from_dict(cls, data, prefix=""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in names:
            raise ValueError(
                f"unknown config key '{key}' (expected one of: {', '.join(names)})"
            )
        kwargs[name] = _convert(value, hints[name], key)
    return cls(**kwargs)


def _get_section(config, key):
    parts = key.split(".")
    obj = config
    for part in parts[:-1]:
        obj = getattr(obj, part)
    return obj, parts[-1]


def validate(config):
    """Semantic checks that types alone cannot express.

    Args:
        config: `TrainConfig`.

    Raises:
        ValueError: naming the offending key.
    """
    for key, choices in _CHOICES.items():
        obj, name = _get_section(config, key)
        if getattr(obj, name) not in choices:
            expected = ", ".join(map(str, choices))
            raise ValueError(
                f"config key '{key}': expected one of {expected}, got "
                f"{getattr(obj, name)!r}"
            )
    precision = config.strategy.mixed_precision
    policies = ("float32", "mixed_bfloat16", "mixed_float16")
    if precision in ("bfloat16", "float16"):
        raise ValueError(
            f"config key 'strategy.mixed_precision': {precision!r} would keep the "
            f"weights in {precision}, too coarse for AdamW's small updates (the "
            f"model does not learn); use 'mixed_{precision}' (half-precision "
            "compute, float32 weights)"
        )
    if isinstance(precision, str) and precision not in policies:
        raise ValueError(
            "config key 'strategy.mixed_precision': expected true, false or one "
            f"of {', '.join(policies)}, got {precision!r}"
        )
    model = config.model
    if model.preset is None and (model.vocabulary is None or model.backbone is None):
        raise ValueError(
            "config key 'model': set either 'model.preset', or both "
            "'model.backbone' and 'model.vocabulary'"
        )
    if model.preset is not None and model.backbone is not None:
        raise ValueError(
            "config key 'model': 'model.preset' and 'model.backbone' are "
            "exclusive; set one"
        )
    positive = [
        "model.sequence_length",
        "training.global_batch_size",
        "training.gradient_accumulation_steps",
        "training.eval_batch_size",
        "training.log_every_steps",
        "training.checkpoint_every_steps",
        "training.keep_checkpoints",
        "training.steps",
        "training.eval_every_steps",
        "training.early_stopping_patience",
        "training.epochs",
        "data.shuffle_buffer",
        "strategy.num_cpu_devices",
        "strategy.join_timeout_s",
        "optimizer.learning_rate",
        "optimizer.epsilon",
        "optimizer.clipnorm",
    ]
    fractions = [  # In [0, 1).
        "model.dropout",
        "optimizer.beta_1",
        "optimizer.beta_2",
    ]
    if model.backbone is not None:
        positive += [
            f"model.backbone.{f.name}"
            for f in dataclasses.fields(BackboneConfig)
            if f.name != "dropout"
        ]
        fractions.append("model.backbone.dropout")
    for key in positive:
        value = getattr(*_get_section(config, key))
        # `not value > 0` also catches NaN.
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"config key '{key}': must be > 0, got {value}")
    for key in fractions:
        value = getattr(*_get_section(config, key))
        if not 0.0 <= value < 1.0:
            raise ValueError(f"config key '{key}': must be in [0, 1), got {value}")
    for key in ("optimizer.weight_decay", "optimizer.warmup_steps"):
        value = getattr(*_get_section(config, key))
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"config key '{key}': must be >= 0, got {value}")
    if not 0 <= config.seed < 2**32:  # What Keras's seeding takes.
        raise ValueError(
            f"config key 'seed': must be in [0, 2**32 - 1], got {config.seed}"
        )
    if not 0.0 <= config.optimizer.warmup_ratio <= 1.0:
        raise ValueError(
            "config key 'optimizer.warmup_ratio': must be in [0, 1], got "
            f"{config.optimizer.warmup_ratio}"
        )
    boundaries = config.data.bucket_boundaries or []
    if boundaries and not (
        0 < boundaries[0]
        and all(a < b for a, b in itertools.pairwise(boundaries))
        and boundaries[-1] < model.sequence_length
    ):
        raise ValueError(
            "config key 'data.bucket_boundaries': must increase, from above 0 "
            f"to below model.sequence_length ({model.sequence_length}), got "
            f"{boundaries}"
        )
    names = config.data.label_names
    if names is not None and len(set(names)) != len(names):
        raise ValueError(f"config key 'data.label_names': duplicate names in {names}")
    if names is not None and len(names) < 2:
        raise ValueError(
            f"config key 'data.label_names': a classifier needs at least 2 "
            f"classes, got {names}"
        )
    if config.data.train is None:
        raise ValueError("config key 'data.train': a training file is required")
    weights = config.training.class_weights
    if isinstance(weights, str) and weights != "balanced":
        raise ValueError(
            "config key 'training.class_weights': expected 'balanced' or a "
            f"mapping of class -> weight, got {weights!r}"
        )
    if isinstance(weights, dict):
        for name, weight in weights.items():
            if not (weight >= 0 and math.isfinite(weight)):
                raise ValueError(
                    f"config key 'training.class_weights.{name}': must be >= 0, "
                    f"got {weight}"
                )
    if config.training.early_stopping_patience is not None:
        for key, value in (
            ("data.dev", config.data.dev),
            ("training.eval_every_steps", config.training.eval_every_steps),
        ):
            if value is None:
                raise ValueError(
                    "config key 'training.early_stopping_patience': counts dev "
                    f"evaluations during training, so it needs '{key}'"
                )
    if (
        model.backbone is not None
        and model.sequence_length > model.backbone.max_sequence_length
    ):
        raise ValueError(
            f"config key 'model.sequence_length': {model.sequence_length} exceeds "
            f"'model.backbone.max_sequence_length' "
            f"({model.backbone.max_sequence_length})"
        )
    backbone = model.backbone
    for key, whole, part in (
        ("num_heads", "hidden_dim", "each head gets an equal share"),
        ("num_groups", "num_layers", "each group serves as many layers"),
    ):
        if backbone is not None and getattr(backbone, whole) % getattr(backbone, key):
            raise ValueError(
                f"config key 'model.backbone.{key}': {getattr(backbone, key)} "
                f"does not divide 'model.backbone.{whole}' "
                f"({getattr(backbone, whole)}); {part}"
            )
    return config


def parse_overrides(items):
    """Parses `--set key=value` items into `{dotted_key: value}` (YAML values)."""
    overrides = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if not text.strip():  # An empty shell variable, most likely.
            raise ValueError(
                f"--set {key.strip()}: empty value (use {key.strip()}=null to unset)"
            )
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ValueError(
                f"--set {key.strip()}: {text!r} is not a YAML value ({problem}); "
                "quote text that holds YAML syntax, e.g. "
                f"--set '{key.strip()}=\"{text}\"'"
            ) from None
    return overrides


def _apply_override(data, dotted_key, value):
    parts = dotted_key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"{dotted_key}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def _is_section(dotted_key):
    """Whether `dotted_key` names a section of `TrainConfig` (a dataclass),
    not a setting."""
    tp = TrainConfig
    for part in dotted_key.split("."):
        if not dataclasses.is_dataclass(tp):
            return False
        tp = typing.get_type_hints(tp).get(part)
        # `backbone: BackboneConfig | None`: the section, if any.
        options = typing.get_args(tp) if typing.get_origin(tp) else (tp,)
        tp = next((o for o in options if dataclasses.is_dataclass(o)), None)
    return tp is not None


def dotted(overrides, prefix=""):
    """`{"training": {"steps": 5}}` as `{"training.steps": 5}`: a section given
    as a mapping changes the keys it names, not the whole section. A setting
    whose value is a mapping (`training.class_weights`) is replaced whole:
    its keys are names, which may hold dots."""
    flat = {}
    for key, value in overrides.items():
        if isinstance(value, dict) and _is_section(f"{prefix}{key}"):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _read_yaml_text(path):
    """A config file's text: UTF-8 (a BOM allowed) or UTF-16 with its BOM, as
    Windows Notepad saves it."""
    with open(path, "rb") as f:
        raw = f.read()
    utf16 = raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    try:
        return raw.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not a UTF-8 text file (byte {e.start}: {e.reason}). Pass "
            "the training YAML config, not a model or another binary file."
        ) from None


def load_config(path=None, overrides=None, data=None):
    """Loads, overrides and validates a training config.

    Args:
        path: str. A YAML file; relative paths inside it are resolved relative
            to its directory.
        overrides: dict of dotted key -> value (e.g. from `--set`), applied
            after loading; a mapping value updates that section's keys.
            Relative paths here stay relative to the CWD.
        data: dict. A config given as a mapping instead of a file.

    Returns:
        A validated `TrainConfig`.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: YAML syntax, unknown keys, wrong types or bad values, with
            the file and key named.

    Example:
    ```python
    from albert_tf.training import load_config

    config = load_config("configs/tiny.yaml", overrides={"training.steps": 10})
    ```
    """
    base_dir = os.getcwd()
    if path is not None:
        path = os.fspath(path)
        if os.path.isdir(path):
            raise IsADirectoryError(f"config '{path}' is a folder; pass a YAML file")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file not found: '{path}'")
        text = _read_yaml_text(path)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:line {mark.line + 1}" if mark else str(path)
            problem = getattr(e, "problem", None) or str(e)
            context = getattr(e, "context", None)
            raise ValueError(
                f"{where}: invalid YAML: {problem}"
                + (f" ({context})" if context else "")
            ) from None
        base_dir = os.path.dirname(os.path.abspath(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    data = copy.deepcopy(data)
    where = f"{path}: " if path else ""
    overrides = dotted(overrides or {})
    for key, value in overrides.items():
        _apply_override(data, key, value)
    try:
        config = _from_dict(TrainConfig, data)
        _resolve_paths(config, base_dir, overrides)
        _default_text_flags(config.model)
        return validate(config)
    except (TypeError, ValueError) as e:
        # A key that came from an override (`--set`) is named as such, in
        # words that read right from the command line and from Python.
        given = [k for k in overrides if _names_key(str(e), k)]
        if given:
            where = f"{where[:-2]} with " if where else "override "
            where += f"{given[0]}={overrides[given[0]]}: "
        elif path is not None and (line := _key_line(text, str(e))):
            where = f"{path}:line {line}: "
        raise ValueError(f"{where}{e}") from None


def _key_line(text, message):
    """The line of the YAML `text` that holds the key `message` names."""
    named = re.search(r"config key '([^']+)'", message)
    if not named:
        return None
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    line = None
    for part in re.sub(r"\[\d+\]$", "", named[1]).split("."):
        found = isinstance(node, yaml.MappingNode) and [
            (key, value) for key, value in node.value if key.value == part
        ]
        if not found:
            return None  # Not written in the file: a default, or a section.
        key, node = found[0]
        line = key.start_mark.line + 1
    return line


def _names_key(message, key):
    """Whether `message` quotes `key`, a part of its value ('key[0]',
    'key.name') or one of its sections ('traning')."""
    parts = key.split(".")
    prefixes = (".".join(parts[: i + 1]) for i in range(len(parts)))
    return any(f"'{prefix}'" in message for prefix in prefixes) or any(
        f"'{key}{sep}" in message for sep in ".["
    )


def _default_text_flags(model):
    """From scratch, original ALBERT's text preprocessing, written out."""
    if model.preset is None:
        for key in ("lowercase", "strip_accents"):
            if getattr(model, key) is None:
                setattr(model, key, True)


def _resolve_paths(config, base_dir, overrides):
    for key in PATH_KEYS:
        obj, name = _get_section(config, key)
        value = getattr(obj, name)
        if value is None or os.path.isabs(value):
            continue
        if key == "model.preset" and (value in BUILTIN_PRESETS or "://" in value):
            continue  # A preset id or hub handle, not a directory.
        # Paths from the command line are relative to the CWD, as usual.
        root = os.getcwd() if key in overrides else base_dir
        setattr(obj, name, os.path.normpath(os.path.join(root, value)))
