"""Builds the classifier a training config describes."""

from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer


def build_preprocessor(model_config):
    """The preprocessor of a from-scratch config (vocabulary + sequence length)."""
    tokenizer = AlbertTokenizer(
        proto=model_config.vocabulary,
        lowercase=model_config.lowercase,
        strip_accents=model_config.strip_accents,
    )
    return AlbertTextClassifierPreprocessor(
        tokenizer, sequence_length=model_config.sequence_length
    )


def build_classifier(model_config, label_names, preprocessor=None, dtype=None):
    """An `AlbertTextClassifier` with its preprocessor and `label_names`.

    Call under `strategy.scope()` so that the variables are distributed.

    Args:
        model_config: `albert_tf.training.config.ModelConfig`.
        label_names: list of str. The label vocabulary (sets `num_classes`).
        preprocessor: reuse this preprocessor (else built from the config).
        dtype: str. A Keras dtype policy name for the backbone and head.

    Returns:
        `albert_tf.models.AlbertTextClassifier`.
    """
    if model_config.preset is not None:
        if not hasattr(AlbertTextClassifier, "from_preset"):
            raise ValueError(
                "config key 'model.preset': this albert_tf has no "
                "`AlbertTextClassifier.from_preset`; use 'model.backbone' and "
                "'model.vocabulary'"
            )
        try:
            return AlbertTextClassifier.from_preset(
                model_config.preset,
                num_classes=len(label_names),
                label_names=list(label_names),
                dropout=model_config.dropout,
                sequence_length=model_config.sequence_length,
            )
        except (ValueError, FileNotFoundError) as e:
            # The loader's hint names the Python call; here it is the config.
            error = (
                FileNotFoundError if isinstance(e, FileNotFoundError) else ValueError
            )
            raise error(
                f"config key 'model.preset': {e} In a training config: --set "
                "model.preset=/path/to/preset_dir."
            ) from None
    if preprocessor is None:
        preprocessor = build_preprocessor(model_config)
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
