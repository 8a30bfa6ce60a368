"""Builds the classifier a training config describes."""

from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer


def _tokenizer_flags(model_config):
    flags = {"lowercase": model_config.lowercase}
    flags["strip_accents"] = model_config.strip_accents
    return {key: value for key, value in flags.items() if value is not None}


def build_preprocessor(model_config):
    """The preprocessor a config asks for, or `None` to take a preset's as is.

    From scratch: `model.vocabulary` with the text flags. With a preset:
    `model.vocabulary` replaces the preset's (fine-tuned checkpoints often
    ship without one), and `model.lowercase`/`model.strip_accents` override
    its flags; with none of them set, the preset's own preprocessor is used.
    """
    flags = _tokenizer_flags(model_config)
    if model_config.vocabulary is not None:
        tokenizer = AlbertTokenizer(proto=model_config.vocabulary, **flags)
    elif model_config.preset is not None and flags:
        tokenizer = AlbertTokenizer.from_preset(model_config.preset, **flags)
    else:
        return None
    return AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=model_config.sequence_length
    )


def build_classifier(
    model_config, label_names, preprocessor=None, dtype=None, load_weights=True
):
    """An `AlbertTextClassifier` with its preprocessor and `label_names`.

    Call under `strategy.scope()` so that the variables are distributed.

    Args:
        model_config: `albert_tf.training.config.ModelConfig`.
        label_names: list of str. The label vocabulary (sets `num_classes`).
        preprocessor: reuse this preprocessor (else built from the config).
        dtype: str. A Keras dtype policy name for the backbone and head.
        load_weights: bool. With a preset: `False` builds its architecture
            only (for a copy that gets weights by `set_weights`).

    Returns:
        `albert_tf.models.AlbertTextClassifier`.
    """
    if preprocessor is None:
        preprocessor = build_preprocessor(model_config)
    if model_config.preset is not None:
        return _from_preset(
            model_config, label_names, preprocessor, dtype, load_weights
        )
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
    )


def _from_preset(model_config, label_names, preprocessor, dtype, load_weights):
    kwargs = {"dtype": dtype} if dtype else {}
    if preprocessor is None:
        kwargs["sequence_length"] = model_config.sequence_length
    else:
        kwargs["preprocessor"] = preprocessor
    try:
        return AlbertTextClassifier.from_preset(
            model_config.preset,
            load_weights=load_weights,
            num_classes=len(label_names),
            label_names=list(label_names),
            dropout=model_config.dropout,
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
        raise ValueError(f"config key 'model': {e}") from None
