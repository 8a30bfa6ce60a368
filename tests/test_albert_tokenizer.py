"""AlbertTokenizer: parity with original ALBERT tokenization, API, serialization."""

import os

import pytest
import tensorflow as tf

from albert_tf.models import AlbertTokenizer

HARD_CASES = [
    "Hello World",
    "THE QUICK Brown fOX",
    "Café naïve résumé façade Ångström",
    "falsé, crème brûlée, São Paulo, Dvořák",
    "i was born in 92000, and this is falsé.",
    "prices: 1,000, 2,500,000, 3, 4 and 55,",
    "a1, b22, ８,  ½, ²,",
    "日本語のテキスト 中文文本 한국어",
    "emoji 😀👍🏽 and ❤️ flags 🇫🇷",
    "``double'' quotes, 'single', \u201ccurly\u201d",
    "tabs\tand\nnewlines\r\nand   many    spaces",
    "\u00a0non-breaking\u2003em space\u3000ideographic",
    "  leading and trailing  ",
    "",
    " ",
    "\u00a8 spacing diaeresis, \u0301 lone combining accent",
    "İstanbul ΣΑΣ Straße ǅ",
    "ﬁ ligature and ｆｕｌｌｗｉｄｔｈ",
    "don't won't can't it's",
    "x" * 3000,
    "NUL\x00inside",
    "\x00LEADING and TRAILING\x00",
    "Twice\x00\x00Ünïcode",
    " ".join(["long sentence with many words"] * 200),
]


@pytest.fixture(scope="module")
def hf_tokenizer(spiece_model_path):
    from transformers import AlbertTokenizer as HFAlbertTokenizer

    return HFAlbertTokenizer(
        vocab_file=spiece_model_path, do_lower_case=True, keep_accents=False
    )


@pytest.fixture(scope="module")
def tokenizer(spiece_model_path):
    return AlbertTokenizer(proto=spiece_model_path)


def _ids(tokenizer, texts):
    return [row.tolist() for row in tokenizer(tf.constant(texts)).numpy()]


def test_known_ids_from_data_readme(tokenizer):
    assert _ids(tokenizer, ["this is a test"]) == [[48, 25, 21, 1289]]
    # The README's ids are without accent stripping.
    no_strip = AlbertTokenizer(proto=tokenizer.proto, strip_accents=False)
    assert _ids(no_strip, ["i was born in 92000, and this is falsé."]) == [
        [31, 23, 386, 19, 561, 3050, 15, 17, 48, 25, 8256, 18, 1, 9]
    ]


def test_parity_with_original_albert_on_sst2_dev(
    tokenizer, hf_tokenizer, sst2_dev_sentences
):
    ours = _ids(tokenizer, sst2_dev_sentences)
    theirs = [
        hf_tokenizer.encode(s, add_special_tokens=False) for s in sst2_dev_sentences
    ]
    mismatches = [
        s for s, a, b in zip(sst2_dev_sentences, ours, theirs, strict=True) if a != b
    ]
    assert not mismatches, f"{len(mismatches)} sentences differ, e.g. {mismatches[:3]}"


@pytest.mark.parametrize("lowercase, strip_accents", [(True, True), (False, False)])
def test_parity_with_original_albert_on_hard_cases(
    spiece_model_path, lowercase, strip_accents
):
    from transformers import AlbertTokenizer as HFAlbertTokenizer

    hf = HFAlbertTokenizer(
        vocab_file=spiece_model_path,
        do_lower_case=lowercase,
        keep_accents=not strip_accents,
    )
    ours = AlbertTokenizer(
        proto=spiece_model_path, lowercase=lowercase, strip_accents=strip_accents
    )
    for text, ids in zip(HARD_CASES, _ids(ours, HARD_CASES), strict=True):
        assert ids == hf.encode(text, add_special_tokens=False), repr(text[:80])


def test_lowercase_makes_case_irrelevant(tokenizer):
    a, b = _ids(tokenizer, ["The Quick BROWN Fox", "the quick brown fox"])
    assert a == b
    cased = AlbertTokenizer(proto=tokenizer.proto, lowercase=False)
    a, b = _ids(cased, ["The Quick BROWN Fox", "the quick brown fox"])
    assert a != b


def test_digit_comma_rule_resplits_pieces(tokenizer, hf_tokenizer):
    # Pieces such as "▁1," exist in the vocabulary; original ALBERT splits them.
    digit_comma = [
        p
        for p in tokenizer.get_vocabulary()
        if len(p) > 1 and p[-1] == "," and p[-2].isdigit()
    ]
    assert digit_comma, "expected digit-comma pieces in the ALBERT vocabulary"
    text = " ".join(p.replace("\u2581", "") for p in digit_comma) + " x"
    ids = _ids(tokenizer, [text])[0]
    comma = tokenizer.token_to_id(",")
    assert ids.count(comma) >= len(digit_comma)
    assert ids == hf_tokenizer.encode(text, add_special_tokens=False)


def test_digit_comma_rule_on_pieces_without_a_leading_underline(tmp_path):
    # All 141 digit-comma pieces of ALBERT's vocabulary start with "\u2581"; a
    # vocabulary with mid-word ones ("12,", "34,") takes the rule's other
    # branch: the "\u2581" that re-splitting adds is dropped ("12" -> "1" "2")
    # or stripped ("\u258134" -> "34"), as in original ALBERT.
    from sentencepiece import sentencepiece_model_pb2
    from transformers import AlbertTokenizer as HFAlbertTokenizer

    from tests.helpers import train_tiny_sentencepiece

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(train_tiny_sentencepiece(tmp_path))
    piece = sentencepiece_model_pb2.ModelProto.SentencePiece
    for text in ("12,", "34,"):
        model.pieces.add(piece=text, score=0.0, type=piece.USER_DEFINED)
    for text in ("\u258134", "34"):
        model.pieces.add(piece=text, score=0.0, type=piece.NORMAL)
    path = tmp_path / "digit_comma.model"
    path.write_bytes(model.SerializeToString())
    hf = HFAlbertTokenizer(vocab_file=str(path))
    texts = ["a12, b34, 12, 34,x", "the fox912,000 and 34,5"]
    assert hf.tokenize(texts[0])[:7] == ["\u2581a", "1", "2", ",", "\u2581b", "34", ","]
    for fast in (False, True):
        ours = AlbertTokenizer(proto=str(path), fast=fast)
        assert _ids(ours, texts) == [
            hf.encode(t, add_special_tokens=False) for t in texts
        ]
    # The documented app-side recipe takes the same branch.
    import sentencepiece as spm

    from albert_tf.tflite import app_tokenization

    processor = spm.SentencePieceProcessor(model_file=str(path))
    assert [app_tokenization.encode(processor, t) for t in texts] == [
        hf.encode(t, add_special_tokens=False) for t in texts
    ]


def test_special_token_strings_in_text_are_plain_text(tokenizer, hf_tokenizer):
    # As original ALBERT: "[MASK]" typed by a user is text, not the mask token.
    # HF's default turns it into the special id (split_special_tokens=False).
    text = "hello [MASK] world <pad> [SEP] [CLS]x"
    ids = _ids(tokenizer, [text])[0]
    assert tokenizer.mask_token_id not in ids and tokenizer.sep_token_id not in ids
    assert ids == hf_tokenizer.encode(
        text, add_special_tokens=False, split_special_tokens=True
    )


def test_preprocessing_keeps_nul_for_scalars_and_batches():
    from albert_tf.models.albert.albert_text_preprocessing import preprocess_text

    assert preprocess_text(tf.constant("A\x00B")).numpy() == b"a\x00b"
    assert preprocess_text(tf.constant([["\x00X", ""]])).numpy().tolist() == [
        [b"\x00x", b""]
    ]


def test_invalid_utf8_gives_a_defined_result(tokenizer, hf_tokenizer):
    raw = b"caf\xc3\xa9 \xff\xfe broken \xc3 bytes"
    ids = tokenizer(tf.constant([raw])).to_list()[0]
    expected = hf_tokenizer.encode(
        raw.decode("utf-8", errors="replace"), add_special_tokens=False
    )
    assert ids == expected


def test_fast_and_regular_sentencepiece_give_identical_ids(
    tokenizer, hf_tokenizer, sst2_dev_sentences
):
    fast = AlbertTokenizer(proto=tokenizer.proto, fast=True)
    texts = sst2_dev_sentences + HARD_CASES
    assert _ids(fast, texts) == _ids(tokenizer, texts)

    # Except between equal-score splits ("e"+"ee" vs "ee"+"e"), where tf-text's
    # SentencePiece build picks the other one; the fast op agrees with the
    # Python `sentencepiece` that HF uses. 4 of 65,349 SST-2 train rows.
    ties = ["eee", "rated eee for excitement", "!!!!!!!"]
    hf = [hf_tokenizer.encode(t, add_special_tokens=False) for t in ties]
    assert _ids(fast, ties) == hf
    assert all(a != b for a, b in zip(_ids(tokenizer, ties), hf, strict=True))

    # `fast` picks the op with TFLite kernels; the other is tf-text's default.
    def op_types(t):
        spec = tf.TensorSpec([None], tf.string)
        graph = tf.function(t).get_concrete_function(spec).graph
        return {op.type for op in graph.get_operations()}

    assert "TFText>FastSentencepieceTokenize" in op_types(fast)
    assert "TFText>FastSentencepieceTokenize" not in op_types(tokenizer)
    assert "SentencepieceTokenizeOp" in op_types(tokenizer)


def test_unbatched_and_batched_agree(tokenizer):
    batched = tokenizer(tf.constant(["hello world", "good movie"])).to_list()
    assert tokenizer("hello world").numpy().tolist() == batched[0]
    assert tokenizer(tf.constant("good movie")).numpy().tolist() == batched[1]


def test_runs_inside_tf_data_and_tf_function(tokenizer):
    texts = ["hello world", "a good movie"]
    expected = tokenizer(tf.constant(texts)).to_list()
    ds = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer)
    assert [row.numpy().tolist() for row in ds] == expected
    traced = tf.function(lambda x: tokenizer(x).to_tensor())
    dense = traced(tf.constant(texts)).numpy()
    assert dense[0, : len(expected[0])].tolist() == expected[0]


def test_sequence_length_pads_and_truncates(tokenizer):
    padded = AlbertTokenizer(proto=tokenizer.proto, sequence_length=5)
    out = padded(tf.constant(["a", "the quick brown fox jumps over"])).numpy()
    assert out.shape == (2, 5)
    assert out[0, 1:].tolist() == [0, 0, 0, 0]


def test_vocabulary_api(tokenizer):
    assert tokenizer.vocabulary_size() == 30000
    assert tokenizer.id_to_token(2) == "[CLS]"
    assert tokenizer.token_to_id("[SEP]") == 3
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id) == (2, 3)
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id) == (0, 1)
    assert tokenizer.mask_token_id == 4
    assert tokenizer.token_to_id("no-such-piece-xyz") == tokenizer.unk_token_id
    with pytest.raises(ValueError, match="range"):
        tokenizer.id_to_token(30000)
    ids = tokenizer(tf.constant(["the quick brown fox."]))
    assert tokenizer.detokenize(ids).numpy()[0] == b"the quick brown fox."
    assert tokenizer.detokenize(ids[0]).numpy() == b"the quick brown fox."


def _plain(value):
    """Tensors, ragged tensors and bytes as the Python lists and str that
    keras-hub returns in eager mode."""
    if isinstance(value, tf.RaggedTensor):
        value = value.to_list()
    elif isinstance(value, tf.Tensor):
        value = value.numpy()
        value = value.tolist() if hasattr(value, "tolist") else value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.decode("utf-8") if isinstance(value, bytes) else value


def test_keras_hub_tokenizer_api_gives_keras_hubs_answers(spiece_model_path):
    keras_hub = pytest.importorskip("keras_hub")
    with open(spiece_model_path, "rb") as f:
        proto = f.read()  # keras-hub leaves a file it opens unclosed.
    ours = AlbertTokenizer(proto=proto)
    theirs = keras_hub.models.AlbertTokenizer(proto=proto)
    text = [
        "the quick brown fox.",
        "a cafe",
    ]  # keras-hub neither lowercases nor strips accents.
    for dtype in ("string", "int64"):
        got = AlbertTokenizer(proto=proto, dtype=dtype)(text)
        expected = keras_hub.models.AlbertTokenizer(proto=proto, dtype=dtype)(text)
        assert got.dtype == dtype and _plain(got) == _plain(expected)
    piece = "\u2581the".encode()
    assert ours.token_to_id(piece) == theirs.token_to_id(piece) != ours.unk_token_id
    assert set(theirs.special_token_ids) <= set(ours.special_token_ids)
    assert (ours.start_token, ours.end_token) == (theirs.start_token, theirs.end_token)
    ids = _plain(theirs(text))
    for value in (ids[0][0], ids[0], ids):  # One id, a sequence, ragged lists.
        assert _plain(ours.detokenize(value)) == _plain(theirs.detokenize(value))
    with pytest.raises(ValueError, match="integer type .* or 'string'"):
        AlbertTokenizer(proto=spiece_model_path, dtype="float32")


def test_missing_special_tokens_are_named(tmp_path):
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["hello world", "good bad movie"] * 20),
        model_writer=model,
        vocab_size=20,
        user_defined_symbols="[CLS],[SEP]",
        minloglevel=2,
    )
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        AlbertTokenizer(proto=model.getvalue())


def test_bad_proto_errors_name_the_problem(tmp_path):
    missing = tmp_path / "nope.model"
    with pytest.raises(FileNotFoundError, match="nope.model"):
        AlbertTokenizer(proto=str(missing))
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a sentencepiece model")
    with pytest.raises(ValueError, match="junk.model"):
        AlbertTokenizer(proto=str(junk))
    with pytest.raises(TypeError, match="proto"):
        AlbertTokenizer(proto=123)


def test_unset_vocabulary_and_wrong_input_are_clear(tiny_proto):
    with pytest.raises(ValueError, match="No vocabulary"):
        AlbertTokenizer()(tf.constant(["x"]))
    tokenizer = AlbertTokenizer(proto=tiny_proto)
    with pytest.raises(TypeError, match="strings"):
        tokenizer(tf.constant([1, 2]))
    with pytest.raises(ValueError, match="rank 1"):
        tokenizer(tf.constant([["a"]]))


def test_config_round_trip_keeps_options_not_vocabulary(tiny_proto):
    tokenizer = AlbertTokenizer(proto=tiny_proto, lowercase=False, fast=True)
    config = tokenizer.get_config()
    assert config["proto"] is None
    assert (config["lowercase"], config["strip_accents"], config["fast"]) == (
        False,
        True,
        True,
    )
    restored = AlbertTokenizer.from_config(config)
    assert restored.get_config() == config


def test_assets_round_trip(tiny_proto, tmp_path):
    tokenizer = AlbertTokenizer(proto=tiny_proto)
    tokenizer.save_assets(str(tmp_path))
    assert os.path.isfile(tmp_path / "vocabulary.spm")
    restored = AlbertTokenizer.from_config(tokenizer.get_config())
    restored.load_assets(str(tmp_path))
    texts = tf.constant(["The quick brown fox, 1,000 times."])
    assert restored(texts).to_list() == tokenizer(texts).to_list()


@pytest.mark.parametrize("fast", [False, True])
def test_survives_resetting_the_random_seed(tiny_proto, fast):
    # tf-text's kernel-owned SentencePiece resource dies when the eager kernel
    # cache is cleared, which `set_random_seed` does.
    tokenizer = AlbertTokenizer(proto=tiny_proto, fast=fast)
    texts = tf.constant(["the quick fox"])
    before = tokenizer(texts).to_list()
    traced = tf.function(lambda x: tokenizer(x).to_tensor())
    traced(texts)
    tf.random.set_seed(123)
    assert tokenizer(texts).to_list() == before
    assert traced(texts).numpy().tolist() == before


@pytest.mark.parametrize("fast", [False, True])
def test_vocabulary_can_be_set_inside_a_trace(tokenizer, fast):
    # A tokenizer built inside a `tf.function` (a model made in one): its
    # SentencePiece resource and digit-comma table must outlive the trace.
    texts = ["I was born in 92000, and this is falsé."]

    @tf.function
    def ids(x):
        return AlbertTokenizer(proto=tokenizer.proto, fast=fast)(x).flat_values

    expected = AlbertTokenizer(proto=tokenizer.proto, fast=fast)(texts)
    assert ids(tf.constant(texts)).numpy().tolist() == expected[0].numpy().tolist()
