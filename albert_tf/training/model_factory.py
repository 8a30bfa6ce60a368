"""Builds the classifier a training config describes."""

from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer


def _tokenizer_overrides(model_config):
    """The tokenizer arguments the config sets (`None`: not set)."""
    overrides = {
        "proto": model_config.vocabulary,
        "lowercase": model_config.lowercase,
        "strip_accents": model_config.strip_accents,
    }
    return {key: value for key, value in overrides.items() if value is not None}


def build_preprocessor(model_config):
    """The preprocessor of a from-scratch config; `None` for a preset's."""
    if model_config.preset is not None:
        return None
    return AlbertTextClassifierPreprocessor(
        AlbertTokenizer(**_tokenizer_overrides(model_config)),
        sequence_length=model_config.sequence_length,
    )


def build_classifier(model_config, label_names, preprocessor=None, dtype=None):
    """An `AlbertTextClassifier` with its preprocessor and `label_names`.

    Call under `strategy.scope()` so that the variables are distributed.
    Not compiled: the trainer brings its own optimizer, and a compiled one
    would be checkpointed with the model (wrapped for loss scaling under
    `mixed_float16`, so a run could not resume in another precision).

    Args:
        model_config: `albert_tf.training.config.ModelConfig`.
        label_names: list of str. The label vocabulary (sets `num_classes`).
        preprocessor: reuse this preprocessor (else built from the config).
        dtype: str. A Keras dtype policy name for the backbone and head.

    Returns:
        `albert_tf.models.AlbertTextClassifier`.
    """
    if model_config.preset is not None:
        return _from_preset(model_config, label_names, preprocessor, dtype)
    preprocessor = preprocessor or build_preprocessor(model_config)
    backbone_kwargs = dict(vars(model_config.backbone))
    backbone = AlbertBackbone(
        vocabulary_size=preprocessor.tokenizer.vocabulary_size(),
        dtype=dtype,
        **backbone_kwargs,
    )
    return AlbertTextClassifier(
        backbone,
        num_classes=len(label_names),
        preprocessor=preprocessor,
        dropout=model_config.dropout,
        label_names=list(label_names),
        compile=False,
    )


def _from_preset(model_config, label_names, preprocessor, dtype):
    preset = model_config.preset
    kwargs = {"dtype": dtype} if dtype else {}
    tokenizer_overrides = _tokenizer_overrides(model_config)
    try:
        if preprocessor is None and tokenizer_overrides:
            # The preset's tokenizer and preprocessor, with the config's
            # vocabulary (fine-tunes often ship without one) or text flags.
            preprocessor = AlbertTextClassifierPreprocessor.from_preset(
                preset,
                tokenizer=AlbertTokenizer.from_preset(preset, **tokenizer_overrides),
                sequence_length=model_config.sequence_length,
            )
        if preprocessor is None:
            kwargs["sequence_length"] = model_config.sequence_length
        else:
            kwargs["preprocessor"] = preprocessor
        return AlbertTextClassifier.from_preset(
            preset,
            num_classes=len(label_names),
            label_names=list(label_names),
            dropout=model_config.dropout,
            compile=False,
            **kwargs,
        )
    except FileNotFoundError as e:
        # The loader's hint names the Python call; here it is the config.
        raise FileNotFoundError(
            f"config key 'model.preset': {e} In a training config: --set "
            "model.preset=/path/to/preset_dir (or model.vocabulary for a "
            "missing spiece.model)."
        ) from None
    except ValueError as e:  # Also the preset's fit with model.* keys.
        hint = ""
        if ".from_preset('/path/to/preset_dir')" in str(e):  # A download failed.
            hint = " In a training config: --set model.preset=/path/to/preset_dir."
        raise ValueError(f"config key 'model': {e}{hint}") from None
