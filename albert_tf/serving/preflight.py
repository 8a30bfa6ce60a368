"""Preflight of a SavedModel for TF Serving: signatures, dtypes, non-core ops.

Reads only `saved_model.pb` (as the C++ model server does), so it works on
any export without loading it.
"""

import dataclasses
import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

# Ops that run Python: no model server can execute them.
FORBIDDEN_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


@dataclasses.dataclass
class SignatureInfo:
    """One signature: method name and `{key: (dtype, shape)}` of its tensors."""

    name: str
    method_name: str
    inputs: dict
    outputs: dict


@dataclasses.dataclass
class PreflightReport:
    """What a model server needs to know about an export."""

    path: str
    tags: list
    signatures: list
    non_core_ops: list  # Ops not in core TensorFlow (tf-text's, here).
    forbidden_ops: list

    def format(self):
        """The report as the text `albert-tf inspect` prints."""
        lines = [f"SavedModel: {self.path}", f"Tags: {', '.join(self.tags)}"]
        for s in self.signatures:
            lines.append(f"Signature '{s.name}' ({s.method_name})")
            for kind, tensors in (("input", s.inputs), ("output", s.outputs)):
                for key, (dtype, shape) in sorted(tensors.items()):
                    lines.append(f"  {kind:6} {key}: {dtype} {shape}")
        lines.append(
            "Ops outside core TensorFlow (the model server must link them, e.g. "
            "tensorflow-text's op library):"
        )
        lines.extend(f"  {op}" for op in self.non_core_ops or ["(none)"])
        if self.forbidden_ops:
            lines.append(
                f"FORBIDDEN ops (no model server runs them): {self.forbidden_ops}"
            )
        return "\n".join(lines)


def _shape_text(shape_proto):
    if shape_proto.unknown_rank:
        return "<unknown rank>"
    return (
        "["
        + ", ".join(
            "batch"
            if i == 0 and d.size == -1
            else ("?" if d.size == -1 else str(d.size))
            for i, d in enumerate(shape_proto.dim)
        )
        + "]"
    )


def _tensors(tensor_infos):
    return {
        key: (tf.dtypes.as_dtype(info.dtype).name, _shape_text(info.tensor_shape))
        for key, info in tensor_infos.items()
    }


def _graph_ops(graph_def):
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def _is_core_op(op):
    # Core ops have generated wrappers in `tf.raw_ops`; ops from custom
    # libraries (tf-text) do not. Underscore ops are runtime internals.
    return op.startswith("_") or hasattr(tf.raw_ops, op)


def preflight(saved_model_dir, tags=("serve",)):
    """Checks an export for TF Serving and describes it.

    Args:
        saved_model_dir: str. A SavedModel folder (a version folder).
        tags: tuple of str. The MetaGraph tags to check.

    Returns:
        A `PreflightReport`.

    Raises:
        FileNotFoundError: no `saved_model.pb` in the folder.
        ValueError: the graph has ops no model server can run, or no
            MetaGraph with `tags`.
    """
    path = os.path.join(os.fspath(saved_model_dir), "saved_model.pb")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Not a SavedModel folder (no saved_model.pb): '{saved_model_dir}'."
        )
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    meta_graph = next(
        (m for m in saved_model.meta_graphs if set(tags) <= set(m.meta_info_def.tags)),
        None,
    )
    if meta_graph is None:
        raise ValueError(f"'{path}' has no MetaGraph with tags {list(tags)}.")
    signatures = [
        SignatureInfo(
            name=name,
            method_name=s.method_name,
            inputs=_tensors(s.inputs),
            outputs=_tensors(s.outputs),
        )
        for name, s in sorted(meta_graph.signature_def.items())
        if not name.startswith("__")  # `__saved_model_init_op` is not a signature.
    ]
    ops = _graph_ops(meta_graph.graph_def)
    report = PreflightReport(
        path=os.fspath(saved_model_dir),
        tags=list(meta_graph.meta_info_def.tags),
        signatures=signatures,
        non_core_ops=sorted(op for op in ops if not _is_core_op(op)),
        forbidden_ops=sorted(ops & FORBIDDEN_OPS),
    )
    if report.forbidden_ops:
        raise ValueError(
            f"'{path}' uses ops that no TF Serving build can run: "
            f"{report.forbidden_ops} (Python functions, e.g. `tf.py_function`)."
        )
    return report
