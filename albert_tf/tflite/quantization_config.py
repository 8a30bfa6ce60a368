"""How a TFLite build is quantized: a small frozen config."""

import dataclasses

MODES = ("none", "float16", "dynamic", "int8")


@dataclasses.dataclass(frozen=True)
class QuantizationConfig:
    """Conversion policy of a TFLite build.

    Use the constructors `none()`, `float16()`, `dynamic()` and
    `int8(representative_texts)` rather than this class directly.

    Args:
        mode: str. One of `"none"` (float32), `"float16"` (float16 weights),
            `"dynamic"` (int8 weights, float activations) or `"int8"` (full
            integer encoder, calibrated on `representative_texts`).
        representative_texts: tuple of str. Real texts for `int8`
            calibration; they go through the model's own tokenizer.
    """

    mode: str = "none"
    representative_texts: tuple = ()

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(
                f"Unknown quantization mode {self.mode!r}: expected one of {MODES}."
            )
        if self.mode == "int8" and not self.representative_texts:
            raise ValueError(
                "int8 quantization needs representative texts for calibration "
                "(for example a few hundred training sentences)."
            )
        object.__setattr__(
            self, "representative_texts", tuple(self.representative_texts)
        )


def none():
    """Float32: no quantization."""
    return QuantizationConfig("none")


def float16():
    """Float16 weights (half the size; float32 compute on most CPUs)."""
    return QuantizationConfig("float16")


def dynamic():
    """Dynamic-range quantization: int8 weights, activations quantized on the fly."""
    return QuantizationConfig("dynamic")


def int8(representative_texts):
    """Full-integer quantization of the encoder, calibrated on real texts.

    Args:
        representative_texts: iterable of str. Calibration texts (a few hundred
            is typical), tokenized by the model's own tokenizer.
    """
    return QuantizationConfig("int8", tuple(representative_texts))


def from_name(mode, representative_texts=()):
    """The config for a mode name, as given on the command line."""
    if mode == "int8":
        return int8(representative_texts)
    return QuantizationConfig(mode)
