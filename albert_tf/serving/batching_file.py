"""TF Serving's `--batching_parameters_file`, parsed as the server parses it.

The file is a text-format `BatchingParameters` proto
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto).
tensorflow-serving-api ships only the request protos, so the message is
declared here with that file's field names and types, and files are read by
protobuf's own text parser: what it refuses (a field given twice, a
malformed value), TF Serving refuses too.
"""

import functools
import logging
import re

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2

logger = logging.getLogger(__name__)

# The fields albert-tf sets and `albert-tf serve` honours, with their defaults.
DEFAULTS = {
    "max_batch_size": 32,
    "batch_timeout_micros": 2000,
    "num_batch_threads": 4,
    "max_enqueued_batches": 100,
}
# The smallest value TF Serving accepts for each (others: 1).
_LOWEST = {"batch_timeout_micros": 0}

_FIELD = descriptor_pb2.FieldDescriptorProto
# name -> (type, wrapper message or None, repeated), as TF Serving declares them.
_FIELDS = {
    "max_batch_size": (_FIELD.TYPE_MESSAGE, "Int64Value", False),
    "batch_timeout_micros": (_FIELD.TYPE_MESSAGE, "Int64Value", False),
    "max_enqueued_batches": (_FIELD.TYPE_MESSAGE, "Int64Value", False),
    "num_batch_threads": (_FIELD.TYPE_MESSAGE, "Int64Value", False),
    "thread_pool_name": (_FIELD.TYPE_MESSAGE, "StringValue", False),
    "allowed_batch_sizes": (_FIELD.TYPE_INT64, None, True),
    "pad_variable_length_inputs": (_FIELD.TYPE_BOOL, None, False),
    "enable_large_batch_splitting": (_FIELD.TYPE_MESSAGE, "BoolValue", False),
    "max_execution_batch_size": (_FIELD.TYPE_MESSAGE, "Int64Value", False),
}


def lowest_value(name):
    """The smallest value TF Serving accepts for batching field `name`."""
    return _LOWEST.get(name, 1)


def default_text(**values):
    """A batching parameters file: `DEFAULTS`, updated with `values`."""
    values = {**DEFAULTS, **values}
    return "".join(f"{name} {{ value: {values[name]} }}\n" for name in DEFAULTS) + (
        # TF Serving would pad with each tensor's first element: a
        # `padding_mask` of 1s would make padding count as text. Off, requests
        # of different `predict_ids` lengths cannot share a batch.
        "pad_variable_length_inputs: false\n"
    )


@functools.cache
def _message_class():
    file = descriptor_pb2.FileDescriptorProto(
        name="albert_tf/batching_parameters.proto",
        package="albert_tf.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = file.message_type.add(name="BatchingParameters")
    for number, (name, (kind, wrapper, repeated)) in enumerate(_FIELDS.items(), 1):
        message.field.add(
            name=name,
            number=number,  # Text format reads names; numbers only need be unique.
            type=kind,
            type_name=f".google.protobuf.{wrapper}" if wrapper else None,
            label=_FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("albert_tf.serving.BatchingParameters")
    )


def parse(text, path):
    """The `BatchingParameters` message of a file's `text`.

    Raises:
        ValueError: what TF Serving would refuse, with `path:line:column`, or
            a value below the field's lowest, with `path:line`.
    """
    try:
        message = text_format.Parse(text, _message_class()())
    except text_format.ParseError as e:
        unknown = re.search(r'has no field named "(\w+)"', str(e))
        if not unknown:
            raise ValueError(f"{path}:{e}") from None
        # A field of a newer TF Serving, or a misspelt one (which TF Serving
        # refuses): ours are read either way.
        logger.warning(
            "%s:%s: albert-tf does not know the batching field '%s' and skips "
            "it; check its spelling, as TF Serving refuses unknown fields.",
            path,
            str(e).split(" ")[0],
            unknown.group(1),
        )
        message = text_format.Parse(text, _message_class()(), allow_unknown_field=True)
    for name in DEFAULTS:
        if message.HasField(name):
            value = getattr(message, name).value
            if value < lowest_value(name):  # TF Serving refuses these at load.
                raise ValueError(
                    f"{path}:{_line_of(text, name)}: {name} must be "
                    f"{lowest_value(name)} or more, got {value}."
                )
    return message


def values(text, path):
    """`{name: value}` of the `DEFAULTS` fields the file sets."""
    message = parse(text, path)
    return {
        name: getattr(message, name).value
        for name in DEFAULTS
        if message.HasField(name)
    }


def set_fields(text, path, **fields):
    """`text` with the given fields set, every other line kept as it is.

    Raises:
        ValueError: the file is one TF Serving would refuse, or sets a field
            in a way this cannot rewrite in place (adding a second one would
            make TF Serving refuse the file).
    """
    message = parse(text, path)
    for name, value in fields.items():
        line = f"{name} {{ value: {value} }}"
        pattern = re.compile(rf"^([ \t]*){name}\s*:?\s*\{{[^}}]*\}}", re.MULTILINE)
        found = len(pattern.findall(text))
        if found == 1:
            text = pattern.sub(lambda m, line=line: m.group(1) + line, text)
        elif message.HasField(name):
            raise ValueError(
                f"{path}: cannot set {name} in place; write it on a line of "
                f"its own as `{line}`, or delete the file to get a fresh one"
            )
        else:
            text += ("" if text.endswith("\n") or not text else "\n") + line + "\n"
    parse(text, path)
    return text


def _line_of(text, name):
    """The line where field `name` is set (for messages)."""
    match = re.search(rf"^[ \t]*{name}\b", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else "?"
