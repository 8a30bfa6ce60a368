"""Reading labelled text files (TSV, CSV, JSONL, TFRecord) with row checks.

Files are read and checked once on the host, so a bad row is reported with
its file and line (or record number for TFRecord); the checked columns then
feed a `tf.data` pipeline (see `albert_tf.training.data_pipeline`).
"""

import csv
import dataclasses
import io
import json
import logging
import os
import re

logger = logging.getLogger(__name__)

FORMATS = {
    ".tsv": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".tfrecord": "tfrecord",
    ".tfrecords": "tfrecord",
}


class BadRowError(ValueError):
    """A row that cannot be used; the message names file and line."""


@dataclasses.dataclass
class LabelledText:
    """Checked columns of one file.

    Attributes:
        texts: list of str.
        text_pairs: list of str, or `None` without a pair column.
        labels: list of int class ids (or raw str labels when read without a
            `LabelVocabulary`), or `None` for unlabelled files.
        skipped: int. Number of bad rows skipped.
        path: str. The file.
        line_numbers: list of int: each row's line in the file (record
            number for TFRecord), or `None` for rows not read from a file.
    """

    texts: list
    text_pairs: list | None
    labels: list | None
    skipped: int = 0
    path: str = ""
    line_numbers: list | None = None

    def __len__(self):
        return len(self.texts)


def detect_format(path, fmt="auto", format_option="data.format"):
    if fmt != "auto":
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(
            f"{path}: cannot tell the format from the extension '{ext}'; set "
            f"{format_option} to one of tsv, csv, jsonl, tfrecord"
        )
    return FORMATS[ext]


def _raw_lines(f):
    """A binary file's lines, without their ends: \\n, \\r\\n, or a lone \\r
    (classic Mac OS, which older Excel exports still write)."""
    for raw in f:
        yield from raw.removesuffix(b"\n").removesuffix(b"\r").split(b"\r")


def numbered_lines(source, blank=False):
    """Yields (line number, text, error) for each line of UTF-8 text: a
    file's path, or bytes already read (a pipe). A line that is not UTF-8
    gives an error, not a crash; blank lines are left out unless `blank`."""
    pipe = isinstance(source, (bytes, bytearray))
    with io.BytesIO(source) if pipe else open(source, "rb") as f:
        for number, raw in enumerate(_raw_lines(f), start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield number, None, f"undecodable bytes (not UTF-8): {e.reason}"
                continue
            if number == 1:  # A byte-order mark (Excel, Notepad) would join the text.
                text = text.removeprefix("\ufeff")
            if blank or text.strip():
                yield number, text, None


def _looks_csv_quoted(field):
    """`"a ""b"" c"`: how csv writers (pandas `to_csv(sep="\\t")`) quote a field."""
    return len(field) > 2 and field[0] == field[-1] == '"' and '""' in field[1:-1]


def _tsv_records(path):
    warned = False
    for number, line, error in numbered_lines(path):
        # GLUE TSVs are unquoted: fields are taken as they are.
        fields = None if error else line.split("\t")
        if fields and not warned and any(map(_looks_csv_quoted, fields)):
            warned = True
            logger.warning(
                "%s:line %d: a field looks CSV-quoted (%s); TSV fields are read "
                "as they are, quotes included. For a file written with quoting "
                "(e.g. pandas to_csv(sep='\\t')), write a .csv instead.",
                path,
                number,
                next(filter(_looks_csv_quoted, fields))[:40],
            )
        yield number, fields, error


def _csv_records(path):
    """Yields (first line number, fields, error); quoted fields may span lines."""
    # A text may be as long as the file (csv's default limit is 128 KiB).
    csv.field_size_limit(2**31 - 1)
    # utf-8-sig: a byte-order mark (Excel, PowerShell) goes before the csv
    # module sees a quoted first name. surrogateescape: undecodable bytes
    # become a bad row, not a crash.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, strict=True)
        start = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield start, None, f"malformed CSV: {e}"
                if reader.line_num < start:  # Nothing more to read.
                    return
                start = reader.line_num + 1
                continue
            number, start = start, reader.line_num + 1
            if not any(field.strip() for field in fields):
                continue  # A blank line.
            text = "".join(fields)
            if any("\udc80" <= c <= "\udcff" for c in text):
                yield number, None, "undecodable bytes (not UTF-8)"
                continue
            yield number, fields, None


def _delimited_rows(path, delimiter, header):
    """Yields (line, dict or list of fields, error) for TSV/CSV files."""
    records = _tsv_records(path) if delimiter == "\t" else _csv_records(path)
    names = None
    for number, fields, error in records:
        if error:
            yield number, None, error
            continue
        if header and names is None:
            names = fields
            # Unusable, but harmless unless read (Excel's trailing empty names).
            repeated = {name: _REPEATED for name in names if names.count(name) > 1}
            continue
        if names is not None and len(fields) != len(names):
            message = (
                f"expected {len(names)} columns ({', '.join(names)}), got {len(fields)}"
            )
            yield number, None, message + _delimiter_hint(names)
            continue
        if names is None:
            yield number, fields, None
        else:
            yield number, {**dict(zip(names, fields, strict=True)), **repeated}, None


def _jsonl_rows(path):
    for index, (number, line, error) in enumerate(numbered_lines(path)):
        if error:
            yield number, None, error
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            message = f"invalid JSON at column {e.colno}: {e.msg}"
            if index == 0 and line.strip()[:1] in ("[", "{"):  # Pretty-printed.
                raise ValueError(
                    f"{path}:line {number}: {message}. JSON data files are JSON "
                    "Lines: one whole object per line, not an array or an "
                    "object spread over lines"
                ) from None
            yield number, None, message
            continue
        if not isinstance(row, dict):
            yield number, None, f"expected a JSON object, got {type(row).__name__}"
            continue
        yield number, row, None


def _tfrecord_rows(path):
    import tensorflow as tf

    records = tf.data.TFRecordDataset(path).as_numpy_iterator()
    number = 0
    while True:
        number += 1
        try:
            record = next(records)
        except StopIteration:
            return
        except tf.errors.DataLossError as e:  # Cut short, or not a TFRecord.
            yield number, None, f"corrupt or truncated TFRecord ({e.message})"
            return
        try:
            example = tf.train.Example.FromString(record)
        except Exception:  # noqa: BLE001 - protobuf raises DecodeError subclasses.
            yield number, None, "not a serialized tf.train.Example"
            continue
        row = {}
        for key, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            row[key] = values[0] if len(values) == 1 else values
        yield number, row, None


def _delimiter_hint(names):
    """Says so when a file's only column looks split by another delimiter."""
    if len(names) != 1:
        return ""
    other = [d for d in ";|,\t" if d in names[0]]
    if not other:
        return ""
    return (
        f"; its only column is {names[0]!r}: is the file separated by "
        f"{other[0]!r}? TSV files use tabs and CSV files commas"
    )


class ColumnError(BadRowError):
    """A row lacks a configured column: most likely the setting is wrong."""


# The value of a column whose name the header repeats.
_REPEATED = object()


def _field(row, column, what):
    if isinstance(row, list):
        if not isinstance(column, int):
            raise ColumnError(f"{what} column {column!r} needs a header row")
        if not 0 <= column < len(row):
            raise ColumnError(f"{what} column {column} missing (row has {len(row)})")
        return row[column]
    if column not in row:
        found = ", ".join(map(str, row)) or "none"
        raise ColumnError(
            f"missing {what} column {column!r} (columns: {found})"
            + _delimiter_hint(list(map(str, row)))
        )
    if row[column] is _REPEATED:
        raise ColumnError(f"the header names the {what} column {column!r} twice")
    return row[column]


def _as_text(value, what):
    """A text field as str: str, UTF-8 bytes (TFRecord) or a number."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRowError(
                f"undecodable {what} bytes (not UTF-8): {e.reason}"
            ) from None
    if value is None:
        raise BadRowError(f"missing {what} (null)")
    if isinstance(value, list):
        raise BadRowError(f"{what} must be one value, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        kind = {bool: "true/false", dict: "an object"}.get(type(value), type(value))
        raise BadRowError(f"{what} must be a string, got {kind}: {value!r}"[:200])
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # JSON's "\\ud83d": half of a cut emoji.
            raise BadRowError(
                f"{what} holds a lone surrogate (an escaped half of a character, "
                "e.g. of an emoji cut short), which is not UTF-8"
            ) from None
    return str(value)


def _as_label(value):
    """A label field as str; a whole-number float (`1.0`, as pandas writes an
    integer column that has gaps) is the integer id it stands for."""
    if isinstance(value, bool):  # JSON true/false: class names.
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _as_text(value, "label").strip()


# What to do about a missing column, from a training config.
CONFIG_COLUMN_HINT = (
    "set data.text_column / data.text_pair_column / data.label_column in the "
    "config or with --set, or data.header: false if the file has no header row"
)


def read_labelled_text(
    path,
    data_config,
    label_vocabulary=None,
    with_labels=True,
    column_hint=CONFIG_COLUMN_HINT,
    skip_option="--skip-bad-rows",
    format_option="data.format",
):
    """Reads and checks one file.

    Args:
        path: str. The file.
        data_config: `albert_tf.training.config.DataConfig`. Format, columns,
            `skip_bad_rows`.
        label_vocabulary: `LabelVocabulary`. If given, labels are returned as
            class ids and unknown labels are bad rows; otherwise raw strings.
        with_labels: bool. Whether the label column is required.
        column_hint: str. How the caller's user names the columns; ends the
            message about a missing column.
        skip_option: str. How the caller's user turns `skip_bad_rows` on.
        format_option: str. How the caller's user sets the format.

    Returns:
        `LabelledText`.

    Raises:
        FileNotFoundError: the file is missing.
        BadRowError: a bad row (file and line named) when `skip_bad_rows` is
            false; the first bad rows are logged and counted otherwise.
    """
    if os.path.isdir(path):
        raise IsADirectoryError(f"data file '{path}' is a folder; pass a file in it")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file not found: '{path}'")
    fmt = detect_format(path, data_config.format, format_option)
    if fmt == "tsv":
        rows = _delimited_rows(path, "\t", data_config.header)
    elif fmt == "csv":
        rows = _delimited_rows(path, ",", data_config.header)
    elif fmt == "jsonl":
        rows = _jsonl_rows(path)
    else:
        rows = _tfrecord_rows(path)
    unit = "record" if fmt == "tfrecord" else "line"
    pair_column = data_config.text_pair_column
    texts, pairs, labels, skipped, numbers = [], [], [], 0, []
    for number, row, error in rows:
        try:
            if error:
                raise BadRowError(error)
            text = _as_text(_field(row, data_config.text_column, "text"), "text")
            if not text.strip():
                raise BadRowError("empty text")
            if pair_column is not None:
                pair = _as_text(_field(row, pair_column, "text pair"), "text pair")
                if not pair.strip():
                    raise BadRowError("empty text pair")
            if with_labels:
                label = _as_label(_field(row, data_config.label_column, "label"))
                if not label:
                    raise BadRowError("missing label")
                if label_vocabulary is not None:
                    class_id = label_vocabulary.lookup(label)
                    if class_id is None:
                        raise BadRowError(
                            f"unknown label {label!r} (expected one of "
                            f"{', '.join(label_vocabulary.names)} or an id below "
                            f"{len(label_vocabulary)})"
                        )
                    label = class_id
        except BadRowError as e:
            message = f"{path}:{unit} {number}: {e}"
            # A column missing from a header is missing from every row.
            everywhere = (
                isinstance(e, ColumnError)
                and fmt in ("tsv", "csv")
                and data_config.header
            )
            if not data_config.skip_bad_rows or everywhere:
                hint = f"use {skip_option} to skip bad rows"
                if isinstance(e, ColumnError):
                    hint = column_hint
                    if not everywhere:
                        hint += f"; or use {skip_option} to skip rows without it"
                raise BadRowError(f"{message} ({hint})") from None
            skipped += 1
            if skipped <= 10:
                logger.warning("Skipping bad row: %s", message)
            continue
        texts.append(text)
        numbers.append(number)
        if pair_column is not None:
            pairs.append(pair)
        if with_labels:
            labels.append(label)
    if skipped:
        logger.warning("%s: skipped %d bad rows", path, skipped)
    if not texts:
        raise ValueError(f"{path}: no usable rows")
    return LabelledText(
        texts=texts,
        text_pairs=pairs if pair_column is not None else None,
        labels=labels if with_labels else None,
        skipped=skipped,
        path=path,
        line_numbers=numbers,
    )


class LabelVocabulary:
    """Maps raw labels (class names, or integer ids) to class ids.

    Args:
        names: list of str. Class names in id order. A raw label is looked up
            as a name first, then as an integer id in `[0, len(names))`.

    Example:
    ```python
    vocab = LabelVocabulary(["negative", "positive"])
    vocab.lookup("positive"), vocab.lookup("0")  # (1, 0)
    ```
    """

    def __init__(self, names):
        self.names = [str(n) for n in names]
        self._ids = {n: i for i, n in enumerate(self.names)}
        # Integer labels are ids only when the names are not integers
        # themselves (with names "-1", "1", a label "0" is unknown).
        self._ints_are_names = all(_as_int(n) is not None for n in self.names)

    @classmethod
    def from_labels(cls, labels):
        """Labels 0..max give names "0".."max" (ids); negative integers (-1/1)
        are names in numeric order; other labels, sorted names. Whole numbers
        written as floats ("1.0") count as integers."""
        ids = {label: _as_int(label) for label in set(labels)}
        if all(i is not None for i in ids.values()):
            if min(ids.values()) >= 0:
                return cls([str(i) for i in range(max(ids.values()) + 1)])
            return cls([str(i) for i in sorted(set(ids.values()))])
        numbers = sorted(label for label, i in ids.items() if i is not None)
        if numbers:
            logger.warning(
                "Labels mix names and numbers (%s and %s): each is a class of "
                "its own. Map the numbers to names, or set data.label_names.",
                ", ".join(sorted(label for label, i in ids.items() if i is None)[:3]),
                ", ".join(numbers[:3]),
            )
        return cls(sorted(ids))

    def __len__(self):
        return len(self.names)

    def lookup(self, label):
        """Returns the class id of a raw label, or `None` if unknown."""
        if label in self._ids:
            return self._ids[label]
        number = _as_int(label)
        if number is None:
            return None
        if self._ints_are_names:
            return self._ids.get(str(number))  # "+1", "01", "1.0" -> "1".
        return number if 0 <= number < len(self.names) else None

    def tensor_lookup(self):
        """`lookup` as TensorFlow ops, for labels in a `tf.data` pipeline.

        Returns:
            A function: string tensor of labels -> int32 class ids, -1 where
            `lookup` gives `None`. Its tables are made now, so call this
            outside the pipeline.
        """
        import tensorflow as tf

        def table(keys):
            if not keys:
                return None
            return tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(list(keys)), tf.constant(list(keys.values()), tf.int32)
                ),
                default_value=-1,
            )

        by_name = table(self._ids)
        # A number is looked up by its canonical text (`str(int(...))`): as a
        # name where names are numbers, else as an id.
        by_number = (
            by_name
            if self._ints_are_names
            else table({str(i): i for i in range(len(self.names))})
        )

        def lookup(labels):
            if by_name is None:
                return tf.fill(tf.shape(labels), -1)
            text = tf.strings.strip(labels)  # ASCII whitespace, as `_INTEGER`.
            is_number = tf.strings.regex_full_match(text, _INTEGER_CORE)
            for pattern, rewrite in _CANONICAL_INTEGER:
                text = tf.strings.regex_replace(text, pattern, rewrite)
            ids = by_name.lookup(labels)
            number_ids = by_number.lookup(text)
            return tf.where(ids >= 0, ids, tf.where(is_number, number_ids, -1))

        return lookup


# An integer, or a whole number as pandas writes a float column ("1.0").
# ASCII digits and whitespace only, as the graph's `tf.strings.strip` and RE2.
_INTEGER_CORE = r"[+-]?[0-9]+(\.0*)?"
_INTEGER = re.compile(rf"\s*{_INTEGER_CORE}\s*", re.ASCII)
# Regex rewrites of a matching text to `str(int(text))`, for the graph.
_CANONICAL_INTEGER = (
    (r"\.0*$", ""),  # "1.0" -> "1"
    (r"^\+", ""),  # "+1" -> "1"
    (r"^(-?)0+([0-9])", r"\1\2"),  # "007" -> "7", "-01" -> "-1"
    (r"^-0$", "0"),
)


def _as_int(text):
    """The integer `text` spells, or `None`."""
    if not isinstance(text, str) or not _INTEGER.fullmatch(text):
        return None
    return int(text.strip().partition(".")[0])
