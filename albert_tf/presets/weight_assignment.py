"""Copying named source arrays into model variables, with shape checks.

Every converter describes a checkpoint as an explicit map from its own
weight names to our variables plus a reshaping function; this module does the
copying for all of them, so that a wrong or missing weight gets one kind of
error message whatever the source format.
"""

import numpy as np


class WeightSpec:
    """One source weight and the variable it fills.

    Args:
        name: str. The weight's name in the source checkpoint.
        variable: `keras.Variable`. The destination variable.
        transform: callable. Maps the source array to the variable's layout
            (e.g. a transpose for PyTorch's `[out, in]` kernels).
        source_shape: tuple. The shape the source array must have.
    """

    def __init__(self, name, variable, source_shape, transform=None):
        self.name = name
        self.variable = variable
        self.source_shape = tuple(source_shape)
        self.transform = transform or (lambda x: x)


def assign_weights(specs, read, source):
    """Checks every source weight, then copies them all into the model.

    Nothing is assigned unless every weight is present with the right shape,
    so a bad checkpoint never leaves a half-loaded model.

    Args:
        specs: list of `WeightSpec`.
        read: callable. `read(name)` returns the array, or `None` if missing.
        source: str. Describes the checkpoint in error messages.

    Raises:
        ValueError: a weight is missing or has the wrong shape.
    """
    arrays = []
    missing = []
    for spec in specs:
        array = read(spec.name)
        if array is None:
            missing.append(spec.name)
            continue
        array = np.asarray(array)
        if tuple(array.shape) != spec.source_shape:
            raise ValueError(
                f"{source}: weight '{spec.name}' has shape {tuple(array.shape)}, "
                f"expected {spec.source_shape} (for variable "
                f"'{spec.variable.path}')."
            )
        # No copy when the source is already float32 (the usual case).
        arrays.append(spec.transform(array.astype(np.float32, copy=False)))
    if missing:
        shown = ", ".join(f"'{m}'" for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ValueError(f"{source}: missing weights {shown}{more}.")
    for spec, array in zip(specs, arrays, strict=True):
        spec.variable.assign(array.astype(spec.variable.dtype, copy=False))


def unused_names(specs, available):
    """Source weight names that no spec consumed (for a log message)."""
    used = {spec.name for spec in specs}
    return sorted(name for name in available if name not in used)
