"""Writing albert_tf preset directories (keras-hub's layout).

`config.json`, `tokenizer.json`, `preprocessor.json`, `task.json`,
`metadata.json`, `model.weights.h5`, `task.weights.h5` and
`assets/tokenizer/vocabulary.spm`. Each file is written beside its final name
and renamed, so a reader never sees half a file.
"""

import datetime
import json
import logging
import os

import keras

from albert_tf.atomic_file import atomic_path
from albert_tf.presets import convert_keras_hub
from albert_tf.presets import preset_loaders as files

logger = logging.getLogger(__name__)


def _write_json(path, obj):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=4)


def _strip(config, keys=("build_config", "compile_config")):
    """Drops Keras' build/compile state from a nested serialized config."""
    for key in keys:
        config.pop(key, None)
    for value in config.values():
        if isinstance(value, dict):
            _strip(value, keys)
    return config


def _save_config(layer, path):
    _write_json(path, _strip(keras.saving.serialize_keras_object(layer)))


def save_backbone(backbone, preset_dir):
    """Writes `config.json`, `metadata.json` and `model.weights.h5`."""
    from albert_tf import __version__

    _save_config(backbone, os.path.join(preset_dir, files.CONFIG_FILE))
    _write_json(
        os.path.join(preset_dir, files.METADATA_FILE),
        {
            "keras_version": keras.version(),
            "albert_tf_version": __version__,
            "parameter_count": backbone.count_params(),
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        },
    )
    weights = os.path.join(preset_dir, files.MODEL_WEIGHTS_FILE)
    with atomic_path(weights) as tmp:
        os.remove(tmp)
        tmp_h5 = tmp + ".weights.h5"  # Keras insists on this suffix.
        try:
            backbone.save_weights(tmp_h5)
            convert_keras_hub.rename_to_keras_hub_layout(tmp_h5)
            os.replace(tmp_h5, tmp)
        finally:
            if os.path.exists(tmp_h5):
                os.remove(tmp_h5)


def save_tokenizer(tokenizer, preset_dir):
    """Writes `tokenizer.json` and `assets/tokenizer/vocabulary.spm`."""
    _save_config(tokenizer, os.path.join(preset_dir, files.TOKENIZER_CONFIG_FILE))
    vocab = os.path.join(preset_dir, files.TOKENIZER_ASSET_DIR, files.VOCAB_FILE)
    with atomic_path(vocab) as tmp, open(tmp, "wb") as f:
        f.write(tokenizer.proto)


def save_preprocessor(preprocessor, preset_dir):
    """Writes `preprocessor.json` and the tokenizer files."""
    _save_config(preprocessor, os.path.join(preset_dir, files.PREPROCESSOR_CONFIG_FILE))
    save_tokenizer(preprocessor.tokenizer, preset_dir)


def convert_configs_to_keras_hub(preset_dir):
    """Rewrites a preset's JSON configs for keras-hub's ALBERT classes.

    The weight files already use keras-hub's layout; after this,
    `keras_hub.models.AlbertTextClassifier.from_preset(preset_dir)` (or
    `AlbertBackbone`, ...) loads the directory. Settings keras-hub's classes
    do not take (`label_names`, the tokenizer's text switches, the
    preprocessor's `text_pairs`) move to `metadata.json`, where albert_tf's
    loader finds them.
    """
    kept = {}
    for name, key in (
        (files.TASK_CONFIG_FILE, "label_names"),
        (files.TOKENIZER_CONFIG_FILE, "lowercase"),
        (files.TOKENIZER_CONFIG_FILE, "strip_accents"),
        (files.TOKENIZER_CONFIG_FILE, "fast"),
        (files.PREPROCESSOR_CONFIG_FILE, "text_pairs"),
    ):
        path = os.path.join(preset_dir, name)
        if os.path.isfile(path):
            value = files.read_json(path).get("config", {}).get(key)
            if value is not None:
                kept[key] = value
    metadata_path = os.path.join(preset_dir, files.METADATA_FILE)
    if kept and os.path.isfile(metadata_path):
        metadata = files.read_json(metadata_path)
        _write_json(metadata_path, {**metadata, **kept})
    for name in (
        files.CONFIG_FILE,
        files.TOKENIZER_CONFIG_FILE,
        files.PREPROCESSOR_CONFIG_FILE,
        files.TASK_CONFIG_FILE,
    ):
        path = os.path.join(preset_dir, name)
        if os.path.isfile(path):
            config = files.read_json(path)
            _write_json(path, convert_keras_hub.to_keras_hub_config(config))


def remove_task(preset_dir):
    """Deletes a preset's head files: a head trained on another backbone
    would load onto a new one without a word."""
    removed = []
    for name in (files.TASK_CONFIG_FILE, files.TASK_WEIGHTS_FILE):
        path = os.path.join(preset_dir, name)
        if os.path.exists(path):
            os.remove(path)
            removed.append(name)
    if removed:
        logger.warning(
            "Removed the classifier head of the preset in %s (%s): it belongs "
            "to the backbone saved over. Save the classifier to keep one.",
            preset_dir,
            ", ".join(removed),
        )


def save_task(task, preset_dir):
    """Writes `task.json`, `task.weights.h5`, the backbone and preprocessor."""
    _save_config(task, os.path.join(preset_dir, files.TASK_CONFIG_FILE))
    weights = os.path.join(preset_dir, files.TASK_WEIGHTS_FILE)
    with atomic_path(weights) as tmp:
        os.remove(tmp)
        tmp_h5 = tmp + ".weights.h5"
        try:
            # Only the head: the backbone's weights go to model.weights.h5.
            keras.saving.save_weights(
                task, tmp_h5, objects_to_skip=list(task.backbone._flatten_layers())
            )
            os.replace(tmp_h5, tmp)
        finally:
            if os.path.exists(tmp_h5):
                os.remove(tmp_h5)
    save_backbone(task.backbone, preset_dir)
    if task.preprocessor is not None:
        save_preprocessor(task.preprocessor, preset_dir)
