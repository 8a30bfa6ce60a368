"""Reading a local preset directory, whatever wrote it.

One loader per format answers the same questions (backbone config, weights,
vocabulary, head); `loader_for_directory` picks it from the files present:
- albert_tf / keras-hub: `config.json` with a Keras `class_name`,
  `model.weights.h5`, `tokenizer.json`, `assets/tokenizer/vocabulary.spm`.
- Hugging Face: `config.json` with `model_type`, safetensors, `spiece.model`.
- Original Google ALBERT: `albert_config.json`, `model.ckpt-*`,
  `30k-clean.model` (or a TF-Hub module's `variables/`, `assets/`).
"""

import glob
import json
import logging
import os

from albert_tf.presets import convert_google_tf1
from albert_tf.presets import convert_huggingface
from albert_tf.presets import convert_keras_hub
from albert_tf.presets.weight_assignment import assign_weights
from albert_tf.presets.weight_assignment import unused_names

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer.json"
PREPROCESSOR_CONFIG_FILE = "preprocessor.json"
TASK_CONFIG_FILE = "task.json"
METADATA_FILE = "metadata.json"
MODEL_WEIGHTS_FILE = "model.weights.h5"
TASK_WEIGHTS_FILE = "task.weights.h5"
TOKENIZER_ASSET_DIR = os.path.join("assets", "tokenizer")
VOCAB_FILE = "vocabulary.spm"

# Tokenizer/preprocessor config keys a preset may set (keras-hub sets fewer).
TOKENIZER_KEYS = ("lowercase", "strip_accents", "fast", "sequence_length")
PREPROCESSOR_KEYS = ("sequence_length", "truncate", "text_pairs")
TASK_KEYS = ("num_classes", "activation", "dropout", "label_names")


def read_json(path):
    """Parses a JSON file; errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Preset file not found: '{path}'.")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"'{path}' is not valid JSON: {e}") from None


def _warn_unused(source, names):
    # Encoder weights the config has no place for (e.g. more layer groups):
    # the model built from the config is not the checkpoint's model.
    if names:
        logger.warning(
            "%s: %d encoder weights are not used by its config, e.g. %s. Check "
            "num_hidden_groups / inner_group_num / num_hidden_layers.",
            source,
            len(names),
            names[:3],
        )


class PresetLoader:
    """What every format provides. `directory` is a local folder."""

    format_name = None

    def __init__(self, directory):
        self.directory = directory

    def path(self, *names):
        return os.path.join(self.directory, *names)

    def backbone_config(self):
        """`AlbertBackbone` constructor arguments."""
        raise NotImplementedError

    def load_backbone_weights(self, backbone):
        raise NotImplementedError

    def tokenizer_config(self, vocabulary=None):
        """`AlbertTokenizer` arguments, `proto` included: `vocabulary` (a
        SentencePiece model given in place of the preset's, which may then
        be missing), else the preset's own."""
        raise NotImplementedError

    def preprocessor_config(self):
        """Preprocessor arguments other than the tokenizer.

        Without a saved preprocessor config, sequences are as long as the
        backbone allows, at most 512 (BERT/ALBERT's usual maximum).
        """
        return {
            "sequence_length": min(512, self.backbone_config()["max_sequence_length"])
        }

    def task_config(self):
        """Classifier head arguments, or `None` if the preset has no head."""
        return None

    def load_task_weights(self, task):
        """Loads the head's weights; the preset must have a head."""
        raise NotImplementedError


class KerasPresetLoader(PresetLoader):
    """albert_tf and keras-hub preset directories (same layout)."""

    format_name = "keras"

    def __init__(self, directory, config):
        super().__init__(directory)
        self.config = config

    def backbone_config(self):
        return convert_keras_hub.convert_backbone_config(self.config)

    def _assign_h5(self, specs, filename):
        path = self.path(filename)
        arrays = convert_keras_hub.h5_reader(path)
        assign_weights(specs, arrays.get, path)

    def load_backbone_weights(self, backbone):
        specs = convert_keras_hub.backbone_weight_specs(backbone)
        self._assign_h5(specs, MODEL_WEIGHTS_FILE)

    def _metadata(self):
        """`metadata.json`, which also keeps what keras-hub configs cannot
        hold for presets albert_tf wrote in keras-hub's format."""
        path = self.path(METADATA_FILE)
        return read_json(path) if os.path.isfile(path) else {}

    def _config_of(self, filename, keys):
        saved = {}
        if os.path.isfile(self.path(filename)):
            saved = read_json(self.path(filename)).get("config", {})
        metadata = self._metadata()
        return {
            k: saved[k] if k in saved else metadata[k]
            for k in keys
            if k in saved or k in metadata
        }

    def tokenizer_config(self, vocabulary=None):
        # keras-hub's own presets lack `lowercase`/`strip_accents`: our
        # defaults (original ALBERT preprocessing) apply, right for its
        # uncased vocabulary.
        config = self._config_of(TOKENIZER_CONFIG_FILE, TOKENIZER_KEYS)
        vocab = self.path(TOKENIZER_ASSET_DIR, VOCAB_FILE)
        if vocabulary is None and not os.path.isfile(vocab):
            raise FileNotFoundError(f"Preset vocabulary not found: '{vocab}'.")
        config["proto"] = vocabulary or vocab
        return config

    def preprocessor_config(self):
        if not os.path.isfile(self.path(PREPROCESSOR_CONFIG_FILE)):
            return super().preprocessor_config()
        return self._config_of(PREPROCESSOR_CONFIG_FILE, PREPROCESSOR_KEYS)

    def task_config(self):
        if not os.path.isfile(self.path(TASK_CONFIG_FILE)):
            return None
        task = read_json(self.path(TASK_CONFIG_FILE))
        if task.get("class_name") != "AlbertTextClassifier":
            return None
        return self._config_of(TASK_CONFIG_FILE, TASK_KEYS)

    def load_task_weights(self, task):
        self._assign_h5(convert_keras_hub.head_weight_specs(task), TASK_WEIGHTS_FILE)


class HuggingFaceLoader(PresetLoader):
    """`transformers` checkpoints: `AlbertModel` or a sequence classifier."""

    format_name = "huggingface"

    def __init__(self, directory, config):
        super().__init__(directory)
        self.config = config
        self._backbone_config = convert_huggingface.convert_backbone_config(config)
        self._state = None

    def _state_dict(self):
        if self._state is None:
            self._state = convert_huggingface.read_state_dict(self.directory)
        return self._state

    def backbone_config(self):
        return dict(self._backbone_config)

    def _source(self):
        return f"Hugging Face checkpoint '{self.directory}'"

    def load_backbone_weights(self, backbone):
        state = self._state_dict()
        prefix = convert_huggingface.backbone_prefix(state)
        specs = convert_huggingface.backbone_weight_specs(backbone, prefix)
        pooler = (f"{prefix}pooler.weight", f"{prefix}pooler.bias")
        if not any(name in state for name in pooler):
            # AlbertForMaskedLM, token classification and QA models have none.
            specs = [spec for spec in specs if spec.name not in pooler]
            logger.warning(
                "%s has no pooler weights (%s): the pooler keeps its random "
                "initialisation, as transformers does. Fine-tune before use.",
                self._source(),
                ", ".join(pooler),
            )
        assign_weights(specs, state.get, self._source())
        # Task models' heads, not the backbone's.
        heads = ("classifier.", "predictions.", "sop_classifier.", "qa_outputs.")
        _warn_unused(
            self._source(),
            [
                n
                for n in unused_names(specs, state)
                if not n.startswith(heads) and not n.endswith("position_ids")
            ],
        )

    def tokenizer_config(self, vocabulary=None):
        vocab = self.path(convert_huggingface.VOCAB_FILE)
        if vocabulary is None and not os.path.isfile(vocab):
            # Fine-tuned repos often save the weights without the tokenizer.
            raise FileNotFoundError(
                f"Preset vocabulary not found: '{vocab}'. Copy the base model's "
                "spiece.model there (albert-base-v2's for most ALBERT "
                "fine-tunes) or pass it (`albert-tf convert --vocabulary`, "
                "`AlbertTokenizer.from_preset(..., proto=)`), or load the model "
                "with `preprocessor=None`."
            )
        config = {}
        tokenizer_config = self.path(convert_huggingface.TOKENIZER_CONFIG_FILE)
        if os.path.isfile(tokenizer_config):
            config = convert_huggingface.convert_tokenizer_config(
                read_json(tokenizer_config)
            )
        config["proto"] = vocabulary or vocab
        return config

    def task_config(self):
        if convert_huggingface.is_classifier_checkpoint(self.config):
            return convert_huggingface.convert_classifier_config(self.config)
        if not self.config.get("architectures") and "classifier.weight" in (
            self._state_dict()
        ):
            # Token classification and multiple choice heads are named alike,
            # so only config.json can tell.
            logger.warning(
                "%s has a 'classifier' head, but its config.json names no "
                "architectures: only the backbone is loaded. If it is a "
                'sequence classifier, add "architectures": '
                '["AlbertForSequenceClassification"] to config.json.',
                self._source(),
            )
        return None

    def load_task_weights(self, task):
        specs = convert_huggingface.head_weight_specs(task)
        assign_weights(specs, self._state_dict().get, self._source())


class GoogleTF1Loader(PresetLoader):
    """google-research/albert release directories (TF1 checkpoints)."""

    format_name = "google_tf1"

    def __init__(self, directory):
        super().__init__(directory)
        self.config = read_json(self.path(convert_google_tf1.CONFIG_FILE))
        self._reader = None

    def _read(self):
        if self._reader is None:
            prefix = convert_google_tf1.find_checkpoint(self.directory)
            self._reader = (prefix,) + convert_google_tf1.checkpoint_reader(prefix)
        return self._reader

    def backbone_config(self):
        return convert_google_tf1.convert_backbone_config(self.config)

    def load_backbone_weights(self, backbone):
        prefix, read, names = self._read()
        specs = convert_google_tf1.backbone_weight_specs(
            backbone, convert_google_tf1.variable_prefix(names)
        )
        assign_weights(specs, read, f"TF checkpoint '{prefix}'")
        _warn_unused(
            f"TF checkpoint '{prefix}'",
            [
                n
                for n in unused_names(specs, names)
                if "/encoder/" in n and not n.endswith(("adam_m", "adam_v"))
            ],
        )

    def tokenizer_config(self, vocabulary=None):
        return {
            "proto": vocabulary or convert_google_tf1.find_vocabulary(self.directory)
        }

    def task_config(self):
        prefix, read, names = self._read()
        if "output_weights" not in names:  # run_classifier.py's head.
            return None
        num_classes = int(read("output_bias").shape[0])
        if num_classes == 1:  # run_classifier.py's regression (STS-B) head.
            logger.warning(
                "TF checkpoint '%s' has a regression head (output_weights of "
                "shape [1, hidden]); AlbertTextClassifier is a single-label "
                "softmax classifier, so only the backbone is loaded. Give the "
                "classifier `num_classes` to fine-tune a new head.",
                prefix,
            )
            return None
        return {"num_classes": num_classes}

    def load_task_weights(self, task):
        prefix, read, _ = self._read()
        specs = convert_google_tf1.head_weight_specs(task)
        assign_weights(specs, read, f"TF checkpoint '{prefix}'")


def _what_else_it_is(directory):
    """A hint for folders that hold a model, but not as a preset."""
    import tensorflow as tf

    from albert_tf.serving.model_manager import version_folders  # Errors only.

    if os.path.isfile(os.path.join(directory, convert_google_tf1.HUB_MODULE_FILE)):
        return (
            " It is a TF1 TF-Hub module: put the model's "
            f"{convert_google_tf1.CONFIG_FILE} (from the google-research/albert "
            "release of the same model) beside its "
            f"{convert_google_tf1.HUB_MODULE_FILE} to load it."
        )
    if tf.saved_model.contains_saved_model(directory):
        return (
            " It is a SavedModel (an `albert-tf export` version folder?): serve "
            "it, or load the `.keras` model it was exported from."
        )
    if version_folders(directory):
        return (
            " It holds SavedModel version folders (an `albert-tf export` base): "
            "serve it, or load the `.keras` model it was exported from."
        )
    models = sorted(n for n in os.listdir(directory) if n.endswith(".keras"))
    if models:
        name = "model.keras" if "model.keras" in models else models[0]
        return f" It holds a trained model: pass '{os.path.join(directory, name)}'."
    return ""


def loader_for_directory(directory):
    """Picks the loader for a local preset directory from its files."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Preset directory not found: '{directory}'.")
    if os.path.isfile(os.path.join(directory, convert_google_tf1.CONFIG_FILE)):
        return GoogleTF1Loader(directory)
    config_path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(config_path):
        has_ckpt = glob.glob(os.path.join(glob.escape(directory), "*.ckpt*.index"))
        raise FileNotFoundError(
            f"'{directory}' is not a preset: it has no {CONFIG_FILE} (albert_tf, "
            "keras-hub or Hugging Face)"
            + (
                f" and no {convert_google_tf1.CONFIG_FILE} next to its TF checkpoint"
                if has_ckpt
                else f" and no {convert_google_tf1.CONFIG_FILE}"
            )
            + "."
            + _what_else_it_is(directory)
        )
    config = read_json(config_path)
    if "class_name" in config:
        return KerasPresetLoader(directory, config)
    if "model_type" in config:
        return HuggingFaceLoader(directory, config)
    raise ValueError(
        f"'{config_path}' is neither a Keras preset config (no 'class_name') nor "
        "a Hugging Face config (no 'model_type')."
    )
