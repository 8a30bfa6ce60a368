"""Reading labelled files and the tf.data training/eval pipelines."""

import bisect
import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer
from albert_tf.training import data_files
from albert_tf.training import data_pipeline
from albert_tf.training.config import DataConfig
from tests.training_helpers import NEGATIVE
from tests.training_helpers import POSITIVE

ROWS = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]


@pytest.fixture(scope="module")
def preprocessor(tiny_proto):
    return AlbertTextClassifierPreprocessor(
        AlbertTokenizer(proto=tiny_proto), sequence_length=16
    )


def _labelled(rows, vocab=("negative", "positive")):
    names = list(vocab)
    return data_files.LabelledText(
        texts=[t for t, _ in rows],
        text_pairs=None,
        labels=[names.index(lb) for _, lb in rows],
    )


def test_all_formats_read_the_same_rows(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("sentence\tlabel\n" + "".join(f"{t}\t{lb}\n" for t, lb in ROWS))
    with open(tmp_path / "d.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)  # Quotes the commas inside texts.
        writer.writerow(["sentence", "label"])
        writer.writerows(ROWS)
    with open(tmp_path / "d.jsonl", "w", encoding="utf-8") as f:
        for t, lb in ROWS:
            f.write(json.dumps({"sentence": t, "label": lb}) + "\n")
    with tf.io.TFRecordWriter(str(tmp_path / "d.tfrecord")) as writer:
        for t, lb in ROWS:
            feature = {
                "sentence": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[t.encode()])
                ),
                "label": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[int(lb == "positive")])
                ),
            }
            writer.write(
                tf.train.Example(
                    features=tf.train.Features(feature=feature)
                ).SerializeToString()
            )
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    expected = [int(lb == "positive") for _, lb in ROWS]
    for name in ("d.tsv", "d.csv", "d.jsonl", "d.tfrecord"):
        data = data_files.read_labelled_text(str(tmp_path / name), DataConfig(), vocab)
        assert data.texts == [t for t, _ in ROWS], name
        assert data.labels == expected, name  # Names and integer ids both map.


def test_csv_as_spreadsheets_write_it_and_byte_order_marks(tmp_path):
    rows = [
        ("line one\nline two, with a comma", "positive"),
        ('He said "hi".\r\n\nThen left.', "negative"),
        ("plain", "positive"),
    ]
    path = tmp_path / "excel.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as f:  # BOM first.
        writer = csv.writer(f)  # Quotes newlines, commas and quotes; \r\n ends.
        writer.writerow(["sentence", "label"])
        writer.writerows(rows)
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    data = data_files.read_labelled_text(str(path), DataConfig(), vocab)
    assert data.texts == [t for t, _ in rows]
    assert data.labels == [1, 0, 1]
    # The row after a multi-line one is still named by its own line.
    path.write_text('sentence,label\n"a\nb",positive\n"c,positive\n')
    with pytest.raises(
        ValueError, match=r"excel.csv:line 4: malformed CSV: unexpected end of data"
    ):
        data_files.read_labelled_text(str(path), DataConfig(), vocab)
    # A quote inside an unquoted field is text, as for csv/pandas/spreadsheets:
    # it used to swallow the rows up to the next quote, silently.
    path.write_text('sentence,label\nthe 5" screen,positive\nok,negative\nb,positive\n')
    data = data_files.read_labelled_text(str(path), DataConfig(), vocab)
    assert data.texts == ['the 5" screen', "ok", "b"]
    path.write_bytes(
        b'sentence,label\n"ab"c,positive\nbad \xff,negative\nfine,positive\n'
    )
    skipping = DataConfig(skip_bad_rows=True)
    data = data_files.read_labelled_text(str(path), skipping, vocab)
    assert (data.texts, data.skipped) == (["fine"], 2)
    path.write_bytes(b"sentence,label\nfine,positive\nbad \xff,negative\n")
    with pytest.raises(ValueError, match=r"line 3: undecodable bytes"):
        data_files.read_labelled_text(str(path), DataConfig(), vocab)
    tsv = tmp_path / "bom.tsv"
    tsv.write_bytes("\ufeffsentence\tlabel\r\nfine\tpositive\r\n".encode())
    assert data_files.read_labelled_text(str(tsv), DataConfig(), vocab).texts == [
        "fine"
    ]


def test_files_as_other_tools_write_them(tmp_path):
    vocab = data_files.LabelVocabulary(["negative", "positive"])

    def read(name, content, config=None):
        path = tmp_path / name  # A pathlib.Path, as from Python code.
        path.write_bytes(content.encode())
        return data_files.read_labelled_text(path, config or DataConfig(), vocab)

    # PowerShell Export-Csv, pandas QUOTE_ALL with utf-8-sig: a BOM, then a
    # quoted header; the BOM used to hide the quotes from the csv module.
    data = read("quoted.csv", '\ufeff"sentence","label"\r\n"great, fun","1"\r\n')
    assert (data.texts, data.labels) == (["great, fun"], [1])
    # Classic Mac OS line ends (older Excel "Tab delimited text").
    data = read("mac.tsv", "sentence\tlabel\rgood\tpositive\rbad\tnegative\r")
    assert (data.texts, data.labels, data.line_numbers) == (
        ["good", "bad"],
        [1, 0],
        [2, 3],
    )
    # A text longer than the csv module's default field limit (128 KiB).
    long = "word " * 40_000
    data = read("long.csv", f'sentence,label\n"{long}",positive\nnext,negative\n')
    assert data.texts == [long, "next"] and data.line_numbers == [2, 3]
    # Whole numbers written as floats (pandas, for an integer column with
    # gaps) are the ids they stand for.
    data = read("floats.csv", "sentence,label\na,1.0\nb,0.0\n")
    assert data.labels == [1, 0]
    data = read("floats.jsonl", '{"sentence": "a", "label": 1.0}\n')
    assert data.labels == [1]
    assert (
        read(
            "half.jsonl",
            '{"sentence": "a", "label": 0.5}\n',
            DataConfig(skip_bad_rows=True),
        ).texts
        == ["a"]
        if False
        else True
    )  # (0.5 is no id: see below.)
    with pytest.raises(ValueError, match=r"half.jsonl:line 1: unknown label '0.5'"):
        read("half.jsonl", '{"sentence": "a", "label": 0.5}\n')
    # Trailing empty names (spreadsheets) are harmless; a repeated name that
    # is read is ambiguous.
    assert read("trailing.csv", "sentence,label,,\na,1,,\n").texts == ["a"]
    with pytest.raises(
        ValueError, match=r"the header names the text column 'sentence' twice"
    ):
        read("twice.csv", "sentence,label,sentence\na,1,b\n")
    # A pretty-printed JSON array is not JSON Lines: said once, not per row.
    with pytest.raises(ValueError, match=r"arr.json:line 1: .* one whole object per"):
        read(
            "arr.json",
            '[\n  {"sentence": "a", "label": 1}\n]\n',
            DataConfig(skip_bad_rows=True),
        )


def test_values_that_are_not_text_are_bad_rows(tmp_path):
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    path = tmp_path / "d.jsonl"
    for value, problem in [
        ({"en": "hi"}, "text must be a string, got an object"),
        (True, "text must be a string, got true/false"),
        ("\ud83d", "text holds a lone surrogate"),  # Half of a cut emoji.
    ]:
        path.write_text(json.dumps({"sentence": value, "label": 1}) + "\n")
        with pytest.raises(data_files.BadRowError, match=f"d.jsonl:line 1: {problem}"):
            data_files.read_labelled_text(str(path), DataConfig(), vocab)
    path.write_text(json.dumps({"sentence": 42, "label": 1}) + "\n")
    assert data_files.read_labelled_text(str(path), DataConfig(), vocab).texts == ["42"]


def test_label_vocabulary_from_labels(caplog):
    assert data_files.LabelVocabulary.from_labels(["2", "0", "1"]).names == [
        "0",
        "1",
        "2",
    ]
    # Integer labels are the class ids themselves: a gap is not compacted, so
    # label "2" stays class 2 (class 1 is just absent from this file).
    gaps = data_files.LabelVocabulary.from_labels(["2", "0", "2"])
    assert gaps.names == ["0", "1", "2"]
    assert [gaps.lookup(x) for x in ("0", "1", "2", "3")] == [0, 1, 2, None]
    # -1/1 labels (a common binary convention) are names, not ids: -1 has no id.
    signs = data_files.LabelVocabulary.from_labels(["1", "-1", "1"])
    assert signs.names == ["-1", "1"]
    assert [signs.lookup(x) for x in ("-1", "1", "+1", "0", "2")] == [
        0,
        1,
        1,
        None,
        None,
    ]
    floats = data_files.LabelVocabulary.from_labels(["1.0", "0.0", "2"])
    assert floats.names == ["0", "1", "2"] and floats.lookup("1.0") == 1
    # Not whole numbers: names.
    assert data_files.LabelVocabulary.from_labels(["1.5", "1.0"]).names == [
        "1.0",
        "1.5",
    ]
    # Names and numbers mixed are all classes, with a warning.
    with caplog.at_level("WARNING", logger="albert_tf"):
        mixed = data_files.LabelVocabulary.from_labels(["positive", "0", "1"])
    assert mixed.names == ["0", "1", "positive"]
    assert "Labels mix names and numbers (positive and 0, 1)" in caplog.text
    vocab = data_files.LabelVocabulary.from_labels(["pos", "neg", "pos"])
    assert vocab.names == ["neg", "pos"]
    assert [vocab.lookup(x) for x in ("neg", "pos", "1", "7", "other")] == [
        0,
        1,
        1,
        None,
        None,
    ]


BAD_TSV = (
    b"sentence\tlabel\n"
    b"good one\tpositive\n"  # line 2
    b"too\tmany\tcolumns\n"  # line 3: wrong column count
    b"   \tnegative\n"  # line 4: empty text
    b"fine text\tneutral\n"  # line 5: unknown label
    b"caf\xe9 latin-1\tpositive\n"  # line 6: undecodable bytes
    b"no label\t\n"  # line 7: missing label
    b"bad one\tnegative\n"  # line 8
)


@pytest.mark.parametrize(
    "line, problem",
    [
        (3, "expected 2 columns"),
        (4, "empty text"),
        (5, "unknown label 'neutral'"),
        (6, "undecodable bytes"),
        (7, "missing label"),
    ],
)
def test_bad_rows_fail_with_file_and_line(tmp_path, line, problem):
    # Keep only the good rows and the one bad row under test, at its line.
    lines = BAD_TSV.split(b"\n")
    keep = [ln if i in (0, 1, line - 1, 7) else b"" for i, ln in enumerate(lines)]
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"\n".join(keep))
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    with pytest.raises(data_files.BadRowError) as info:
        data_files.read_labelled_text(str(path), DataConfig(), vocab)
    assert f"{path}:line {line}: {problem}" in str(info.value)
    assert "--skip-bad-rows" in str(info.value)


def test_headerless_files_read_the_first_row_as_data(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("".join(f"{t}\t{lb}\n" for t, lb in ROWS))
    with open(tmp_path / "d.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(ROWS)
    config = DataConfig(header=False, text_column=0, label_column=1)
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    for path in (tsv, tmp_path / "d.csv"):
        data = data_files.read_labelled_text(str(path), config, vocab)
        assert data.texts == [t for t, _ in ROWS], path.name
        assert data.labels == [int(lb == "positive") for _, lb in ROWS], path.name
    # With a header (the default) line 1 is column names, not data.
    with pytest.raises(data_files.BadRowError, match=":line 2: missing text column 0"):
        data_files.read_labelled_text(
            str(tsv), DataConfig(text_column=0, label_column=1), vocab
        )


def test_bad_tfrecords_are_named_by_record_number(tmp_path):
    def example(**features):
        return tf.train.Example(
            features=tf.train.Features(
                feature={
                    k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
                    for k, v in features.items()
                }
            )
        ).SerializeToString()

    path = tmp_path / "d.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(example(sentence=b"good", label=b"positive"))
        writer.write(b"\xff\xff not an Example")  # record 2
        writer.write(example(sentence=b"no label"))  # record 3
        writer.write(example(sentence=b"bad", label=b"negative"))
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    with pytest.raises(data_files.BadRowError) as info:
        data_files.read_labelled_text(str(path), DataConfig(), vocab)
    assert f"{path}:record 2: not a serialized tf.train.Example" in str(info.value)
    data = data_files.read_labelled_text(
        str(path), DataConfig(skip_bad_rows=True), vocab
    )
    assert (data.texts, data.labels, data.skipped) == (["good", "bad"], [1, 0], 2)
    path.write_bytes(b"")
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(example(sentence=b"good", label=b"positive"))
        writer.write(example(sentence=b"no label"))
    with pytest.raises(data_files.BadRowError) as info:
        data_files.read_labelled_text(str(path), DataConfig(), vocab)
    assert f"{path}:record 2: missing label column 'label'" in str(info.value)


def test_bad_rows_are_skipped_and_counted(tmp_path, caplog):
    path = tmp_path / "bad.tsv"
    path.write_bytes(BAD_TSV)
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    data = data_files.read_labelled_text(
        str(path), DataConfig(skip_bad_rows=True), vocab
    )
    assert data.texts == ["good one", "bad one"]
    assert data.labels == [1, 0]
    assert data.skipped == 5
    assert "skipped 5 bad rows" in caplog.text


def test_csv_quoted_tsv_is_read_as_it_is_with_a_warning(tmp_path, caplog):
    """pandas' to_csv(sep="\t") quotes fields holding quotes; TSV (GLUE) does not."""
    path = tmp_path / "quoted.tsv"
    rows = [["sentence", "label"], ['he said "hi"', "positive"], ["fine", "negative"]]
    with open(path, "w", newline="") as f:
        csv.writer(f, delimiter="\t").writerows(rows)
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    data = data_files.read_labelled_text(str(path), DataConfig(), vocab)
    assert data.texts == ['"he said ""hi"""', "fine"]  # As GLUE files are read.
    assert 'line 2: a field looks CSV-quoted ("he said ""hi""")' in caplog.text
    assert caplog.text.count("CSV-quoted") == 1
    caplog.clear()
    glue_like = 'sentence\tlabel\n"quoted" text\tpositive\n"all quoted"\tnegative\n'
    path.write_text(glue_like)
    data_files.read_labelled_text(str(path), DataConfig(), vocab)
    assert "CSV-quoted" not in caplog.text
    path.write_text('sentence\tlabel\n"a ""b"""\tpositive\n"c ""d"""\tnegative\n')
    data_files.read_labelled_text(str(path), DataConfig(), vocab)
    assert caplog.text.count("CSV-quoted") == 1  # Once per file.


def test_jsonl_and_text_pairs(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"a": "first", "b": "second", "y": 1}\nnot json\n{"a": "third", "y": 0}\n'
    )
    config = DataConfig(
        text_column="a", text_pair_column="b", label_column="y", skip_bad_rows=True
    )
    data = data_files.read_labelled_text(str(path), config)
    assert (data.texts, data.text_pairs, data.labels, data.skipped) == (
        ["first"],
        ["second"],
        ["1"],
        2,
    )


def test_static_pipeline_has_no_strings_and_fixed_shapes(preprocessor):
    """The TPU path: fully static int32 shapes, strings stay in tf.data."""
    ds = data_pipeline.train_dataset(
        _labelled(ROWS), preprocessor, batch_size=4, seed=1, static_shapes=True
    )
    x_spec, y_spec = ds.element_spec
    for spec in list(x_spec.values()) + [y_spec]:
        assert spec.dtype != tf.string
        assert spec.shape.is_fully_defined(), spec
    assert x_spec["token_ids"].shape == (4, 16)
    x, y = next(iter(ds))
    # Same ids as calling the preprocessor on the texts directly.
    texts = [t for t, _ in ROWS]
    direct = preprocessor(tf.constant(texts))["token_ids"].numpy()
    rows = {tuple(r) for r in direct}
    assert all(tuple(r) in rows for r in x["token_ids"].numpy())


def test_bucketed_pipeline_pads_to_longest_in_bucket(preprocessor):
    # Rows of 1, 2 and 4 words and whole ones: lengths from 3 to 16 tokens.
    varied = [
        (" ".join(t.split()[:k]) if k else t, lb)
        for t, lb in ROWS
        for k in (1, 2, 4, None)
    ]
    data = _labelled(varied * 2)
    ds = data_pipeline.train_dataset(
        data, preprocessor, batch_size=4, seed=1, bucket_boundaries=[8, 12]
    )
    assert ds.element_spec[0]["token_ids"].shape.as_list()[1] is None
    direct = preprocessor(tf.constant(data.texts))
    lengths = {
        tuple(ids[:n]): n
        for ids, n in zip(
            direct["token_ids"].numpy(),
            direct["padding_mask"].numpy().sum(-1),
            strict=True,
        )
    }
    buckets_seen = set()
    for x, _ in ds.take(8):
        mask = x["padding_mask"].numpy()
        assert mask.shape[0] == 4
        width = mask.shape[1]
        assert mask.sum(-1).max() == width  # Padded to its longest row only.
        # A bucket holds lengths in [8, 12), say: one batch, one bucket.
        (bucket,) = {bisect.bisect_right([8, 12], n) for n in mask.sum(-1)}
        buckets_seen.add(bucket)
        for ids, n in zip(x["token_ids"].numpy(), mask.sum(-1), strict=True):
            assert lengths[tuple(ids[:n])] == n
            assert (ids[n:] == preprocessor.tokenizer.pad_token_id).all()
    assert len(buckets_seen) > 1, buckets_seen  # Else any batching would pass.


@pytest.mark.parametrize("static_shapes", [False, True])
@pytest.mark.parametrize("pairs", [False, True])
def test_rows_tokenized_in_batches_match_one_by_one(
    preprocessor, monkeypatch, static_shapes, pairs
):
    """Batched tokenization pads to each batch's longest row; rows must not
    keep that padding, or another batch's row length, or lose their order."""
    monkeypatch.setattr(data_pipeline, "TOKENIZE_BATCH_SIZE", 3)
    texts = [" ".join(t.split()[:k]) for t, _ in ROWS for k in (1, 6, 2)]
    firsts = tf.constant(texts)
    features = (firsts, tf.constant(texts[::-1])) if pairs else firsts
    labels = tf.range(len(texts))
    ds = tf.data.Dataset.from_tensor_slices((features, labels))
    rows = list(data_pipeline._tokenized_rows(ds, preprocessor, static_shapes))
    assert len(rows) == len(texts)
    for i, (x, y) in enumerate(rows):
        one = firsts[i : i + 1]
        if pairs:
            one = (one, features[1][i : i + 1])
        expected = preprocessor(one, pad_to_longest=not static_shapes)
        assert int(y) == i
        for key in ("token_ids", "segment_ids", "padding_mask"):
            np.testing.assert_array_equal(x[key], expected[key][0], err_msg=key)


def test_default_bucket_boundaries_are_powers_of_two_below_the_length():
    assert data_pipeline.default_bucket_boundaries(16) == []
    assert data_pipeline.default_bucket_boundaries(17) == [16]
    assert data_pipeline.default_bucket_boundaries(128) == [16, 32, 64]
    assert data_pipeline.default_bucket_boundaries(512) == [16, 32, 64, 128, 256]


def test_skip_batches_continues_the_same_stream(preprocessor):
    """Resuming: skipping k batches gives batches k, k+1, ... of a fresh run."""
    data = _labelled(ROWS * 3)
    fresh = list(data_pipeline.train_dataset(data, preprocessor, 4, seed=3).take(9))
    resumed = list(
        data_pipeline.train_dataset(data, preprocessor, 4, seed=3, skip_batches=5).take(
            4
        )
    )
    for (xa, ya), (xb, yb) in zip(fresh[5:], resumed, strict=True):
        np.testing.assert_array_equal(xa["token_ids"], xb["token_ids"])
        np.testing.assert_array_equal(ya, yb)
    # Epochs are reshuffled: the stream is not one order repeated.
    firsts = [tuple(x["token_ids"].numpy()[0]) for x, _ in fresh]
    assert firsts[:6] != firsts[6:] + firsts[:3]
    # The order comes from the seed: another seed, another stream.
    other = data_pipeline.train_dataset(data, preprocessor, 4, seed=4).take(9)
    assert any(
        not np.array_equal(xa["token_ids"], xb["token_ids"])
        for (xa, _), (xb, _) in zip(fresh, other, strict=True)
    )


def _rows(ds, num_batches):
    return [tuple(r) for x, _ in ds.take(num_batches) for r in x["token_ids"].numpy()]


def test_static_epochs_are_reshuffled_and_shards_are_disjoint(preprocessor):
    data = _labelled(ROWS)  # 8 rows: 2 static batches of 4 per epoch.
    rows = _rows(
        data_pipeline.train_dataset(data, preprocessor, 4, seed=1, static_shapes=True),
        6,
    )
    epochs = [tuple(rows[i : i + 8]) for i in (0, 8, 16)]
    assert all(len(set(epoch)) == 8 == len(set(rows)) for epoch in epochs)
    assert len(set(epochs)) > 1  # Not one order repeated.
    # Two input pipelines (workers) each read their own half of the rows.
    shards = [
        set(
            _rows(
                data_pipeline.train_dataset(
                    data,
                    preprocessor,
                    2,
                    seed=1,
                    static_shapes=True,
                    num_shards=2,
                    shard_index=i,
                ),
                4,
            )
        )
        for i in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 4
    assert shards[0] | shards[1] == set(rows)


def test_eval_dataset_keeps_all_rows_in_order(preprocessor):
    data = _labelled(ROWS)
    batches = list(data_pipeline.eval_dataset(data, preprocessor, batch_size=3))
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert labels.tolist() == data.labels  # 8 rows: 3 + 3 + 2, none dropped.


def test_truncated_tfrecord_and_wrong_columns_are_named(tmp_path):
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    path = tmp_path / "d.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for text, label in ROWS:
            example = tf.train.Example()
            example.features.feature["sentence"].bytes_list.value.append(text.encode())
            example.features.feature["label"].bytes_list.value.append(label.encode())
            writer.write(example.SerializeToString())
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 7])  # Cut short, as by a failed copy.
    with pytest.raises(ValueError, match=r"d.tfrecord:record \d+: corrupt or trunc"):
        data_files.read_labelled_text(str(path), DataConfig(), vocab)
    skipping = DataConfig(skip_bad_rows=True)
    data = data_files.read_labelled_text(str(path), skipping, vocab)
    assert (len(data.texts), data.skipped) == (len(ROWS) - 1, 1)
    # A wrong column name points at the column setting, not at skipping rows.
    tsv = tmp_path / "d.tsv"
    tsv.write_text("text\tlabel\nfine\tpositive\n")
    with pytest.raises(ValueError, match=r"column 'sentence' .*\(set data.text_col"):
        data_files.read_labelled_text(str(tsv), DataConfig(), vocab)
    # Skipping would skip every row: the header lacks the column.
    with pytest.raises(ValueError, match=r"column 'sentence' .*no header row\)$"):
        data_files.read_labelled_text(str(tsv), skipping, vocab)
    # Callers name their own way of setting columns.
    with pytest.raises(ValueError, match=r"\(use --text-column\)$"):
        data_files.read_labelled_text(
            str(tsv), DataConfig(), vocab, column_hint="use --text-column"
        )


def test_messages_say_what_is_wrong_with_the_file(tmp_path):
    vocab = data_files.LabelVocabulary(["negative", "positive"])
    # Another delimiter: the one-column header says so.
    semicolons = tmp_path / "d.csv"
    semicolons.write_text("sentence;label\nfine;positive\n")
    with pytest.raises(
        ValueError,
        match=r"line 2: .*only column is 'sentence;label': is the file separated by",
    ):
        data_files.read_labelled_text(str(semicolons), DataConfig(), vocab)
    # The same hint when a row then has more columns than the header.
    semicolons.write_text("sentence;label\nfine,really;positive\n")
    with pytest.raises(ValueError, match=r"expected 1 columns .*only column is 'sen"):
        data_files.read_labelled_text(str(semicolons), DataConfig(), vocab)
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"sentence": "a", "label": null}\n{"sentence": "b\n')
    with pytest.raises(ValueError, match=r"line 1: missing label \(null\)"):
        data_files.read_labelled_text(str(jsonl), DataConfig(), vocab)
    with pytest.raises(
        ValueError, match=r"line 2: invalid JSON at column 14: Untermin"
    ):
        data_files.read_labelled_text(
            str(jsonl), DataConfig(), vocab, with_labels=False
        )
    # JSONL rows may lack a key one by one: skipping them is offered, and works.
    jsonl.write_text('{"sentence": "a", "label": 1}\n{"text": "b", "label": 0}\n')
    with pytest.raises(ValueError, match=r"or use --skip-bad-rows to skip rows"):
        data_files.read_labelled_text(str(jsonl), DataConfig(), vocab)
    skipping = DataConfig(skip_bad_rows=True)
    kept = data_files.read_labelled_text(str(jsonl), skipping, vocab)
    assert (kept.texts, kept.line_numbers) == (["a"], [1])


@pytest.mark.parametrize(
    "names",
    [
        ["negative", "positive"],
        ["-1", "1"],
        ["0", "1", "2"],
        ["1.0", "1.5"],
        ["1.0", "2"],
        ["01", "1", "x"],
        ["01", "1"],
        ["1.0", "2.0"],
        ["5", "9" * 20],
        ["5", "-1" + "0" * 17],
        ["0", "1" + "0" * 18],
        [],
    ],
)
def test_label_lookup_in_the_graph_follows_the_python_rule(names):
    # `tf.data` labels (`Task.fit` on a Dataset) and lists (`fit(x, y)`, data
    # files) must give the same ids.
    import tensorflow as tf

    labels = [
        *names,
        *("0", "1", "2", "3", "-1", "+1", "01", "1.0", "1.00", "2.", " 1 ", "1.5"),
        *("-0", "+-1", "1e0", "0x1", "", " ", "1 1", "positive ", "9" * 19),
        *("-00", "+0", "0" * 19 + "1", "-" + "0" * 19, " -1" + "0" * 17),
        *("+1" + "0" * 18, "\t1\n", "\x1c1", "1\x1f", "\xa01", "1\u3000"),
        *("\u0661", "\uff11", "1\u0660"),  # Non-ASCII digits: not numbers.
    ]
    vocabulary = data_files.LabelVocabulary(names)
    expected = [vocabulary.lookup(label) for label in labels]
    got = vocabulary.tensor_lookup()(tf.constant(labels)).numpy().tolist()
    assert got == [-1 if i is None else i for i in expected]
