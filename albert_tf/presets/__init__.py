"""Presets: built-in ids, hub handles, preset directories and converters."""

from albert_tf.presets.builtin_presets import BUILTIN_PRESETS
from albert_tf.presets.builtin_presets import count_backbone_params
from albert_tf.presets.handles import resolve_preset
from albert_tf.presets.preset_loaders import loader_for_directory

__all__ = [
    "BUILTIN_PRESETS",
    "count_backbone_params",
    "loader_for_directory",
    "resolve_preset",
]
