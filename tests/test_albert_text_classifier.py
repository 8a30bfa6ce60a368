"""AlbertTextClassifier: fit/predict/evaluate on strings, dicts and tf.data."""

import warnings
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_tf.models import AlbertBackbone
from albert_tf.models import AlbertTextClassifier
from albert_tf.models import AlbertTextClassifierPreprocessor
from albert_tf.models import AlbertTokenizer
from albert_tf.models import load_classifier
from tests.helpers import tiny_backbone_kwargs

TEXTS = ["what an amazing movie!", "a dull, boring film.", "good acting", "bad story"]
LABELS = [0, 1, 0, 1]


@pytest.fixture(scope="module")
def classifier(tiny_proto):
    keras.utils.set_random_seed(0)
    tokenizer = AlbertTokenizer(proto=tiny_proto)
    preprocessor = AlbertTextClassifierPreprocessor(tokenizer, sequence_length=12)
    backbone = AlbertBackbone(**tiny_backbone_kwargs(vocabulary_size=80))
    model = AlbertTextClassifier(
        backbone,
        num_classes=2,
        preprocessor=preprocessor,
        label_names=["positive", "negative"],
    )
    model.compile()
    return model


def test_fit_predict_evaluate_on_strings_and_tf_data(classifier):
    history = classifier.fit(TEXTS, LABELS, batch_size=2, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    logits = classifier.predict(TEXTS, batch_size=2, verbose=0)
    assert logits.shape == (4, 2)
    ds = tf.data.Dataset.from_tensor_slices((TEXTS, LABELS)).batch(2)
    classifier.fit(ds, epochs=1, verbose=0)
    loss, accuracy = classifier.evaluate(ds, verbose=0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    from_ds = classifier.predict(
        tf.data.Dataset.from_tensor_slices(TEXTS).batch(3), verbose=0
    )
    np.testing.assert_allclose(from_ds, classifier.predict(TEXTS, verbose=0), atol=1e-5)
    # Predictions equal running the preprocessor and the model by hand.
    direct = classifier(classifier.preprocessor(tf.constant(TEXTS)))
    np.testing.assert_allclose(from_ds, direct, atol=1e-5)


def test_in_memory_inputs_skip_tf_data_rewrites_user_datasets_keep_theirs(
    classifier,
):
    # The rewrites cost a third of each iterator's start and gain nothing on
    # our batch -> parallel map -> prefetch pipelines.
    ours = classifier._dataset(TEXTS).options().experimental_optimization
    assert ours.apply_default_optimizations is False
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = True
    given = tf.data.Dataset.from_tensor_slices(TEXTS).batch(2).with_options(options)
    kept = classifier._dataset(given).options().experimental_optimization
    assert kept.apply_default_optimizations is True


def test_batches_pad_to_their_longest_text_unless_xla_compiles(classifier):
    # The same outputs for less compute; XLA compiles one program per shape.
    texts = ["good", "bad", *TEXTS]
    lengths = []
    for batch in classifier._dataset(texts, batch_size=2):
        mask = batch["padding_mask"].numpy()
        assert mask.shape[1] == mask.sum(1).max()
        lengths.append(mask.shape[1])
    assert min(lengths) < 12 == max(lengths)
    compiled = AlbertTextClassifier(
        classifier.backbone, num_classes=2, preprocessor=classifier.preprocessor
    )
    compiled.compile(jit_compile=True)
    for batch in compiled._dataset(texts, batch_size=2):
        assert batch["token_ids"].shape[1] == 12
    for model in (compiled, classifier):  # `call` under XLA; unpadded without.
        expected = model(classifier.preprocessor(tf.constant(texts)))
        np.testing.assert_allclose(
            model.predict(texts, batch_size=2, verbose=0), expected, atol=1e-5
        )
        np.testing.assert_allclose(model.predict_on_batch(texts), expected, atol=1e-5)


def test_subclasses_keep_their_call_and_their_preprocessors_padding(classifier):
    class Scaled(AlbertTextClassifier):
        def call(self, inputs, training=None):
            return super().call(inputs, training=training) * 100.0

    class FixedLength(AlbertTextClassifierPreprocessor):
        def call(self, x, y=None, sample_weight=None):  # No `pad_to_longest`.
            return super().call(x, y, sample_weight)

    preprocessor = FixedLength(classifier.preprocessor.tokenizer, sequence_length=12)
    model = Scaled(classifier.backbone, num_classes=2, preprocessor=preprocessor)
    expected = model(classifier.preprocessor(tf.constant(TEXTS)))
    np.testing.assert_allclose(model.predict(TEXTS, verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(model.predict_on_batch(TEXTS), expected, atol=1e-5)
    assert np.isfinite(model.evaluate(TEXTS, [0, 1, 0, 1], verbose=0)[0])


def test_validation_split_and_batch_methods_take_raw_strings(classifier):
    # keras-hub code: `validation_split` holds out the last rows, as Keras does.
    names = ["positive", "negative", "negative", "positive"]
    history = classifier.fit(
        TEXTS, names, validation_split=0.5, batch_size=2, epochs=1, verbose=0
    )
    held_out = classifier.evaluate(TEXTS[2:], names[2:], verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(held_out[0], rel=1e-5)
    pairs = (TEXTS, TEXTS[::-1])
    assert classifier.fit(pairs, LABELS, validation_split=0.25, verbose=0)
    with pytest.raises(ValueError, match="must be in"):
        classifier.fit(TEXTS, LABELS, validation_split=1.5, verbose=0)
    # train_on_batch/test_on_batch preprocess as predict_on_batch does.
    loss = classifier.test_on_batch(TEXTS, names)
    assert loss[0] == pytest.approx(
        classifier.evaluate(TEXTS, names, batch_size=4, verbose=0)[0], rel=1e-5
    )
    before = classifier.output_dense.kernel.numpy().copy()
    classifier.train_on_batch(TEXTS, names)
    assert not np.allclose(before, classifier.output_dense.kernel.numpy())


def test_sample_weights_validation_data_and_batch_size_reach_keras(classifier):
    # Weights summing to 5 over 4 texts change the loss even when every text's
    # loss is about ln 2 (an untrained head).
    weights = np.array([2.0, 0.0, 0.0, 3.0], "float32")
    x = {k: v.numpy() for k, v in classifier.preprocessor(tf.constant(TEXTS)).items()}
    # Keras' own evaluate on the preprocessed inputs is the reference.
    expected = keras.Model.evaluate(
        classifier, x, np.array(LABELS), sample_weight=weights, verbose=0
    )
    weighted = classifier.evaluate(TEXTS, LABELS, sample_weight=weights, verbose=0)
    np.testing.assert_allclose(weighted, expected, rtol=1e-5)
    assert not np.isclose(weighted[0], classifier.evaluate(TEXTS, LABELS, verbose=0)[0])

    # A (texts, labels, weights) tuple is preprocessed and weighted too.
    history = classifier.fit(
        TEXTS,
        LABELS,
        validation_data=(TEXTS, LABELS, weights),
        batch_size=2,
        verbose=0,
    )
    after = classifier.evaluate(
        TEXTS, LABELS, sample_weight=weights, batch_size=2, verbose=0
    )
    np.testing.assert_allclose(history.history["val_loss"][0], after[0], rtol=1e-5)

    class CountBatches(keras.callbacks.Callback):
        count = 0

        def on_predict_batch_end(self, batch, logs=None):
            self.count += 1

    counter = CountBatches()
    classifier.predict(TEXTS, batch_size=3, verbose=0, callbacks=[counter])
    assert counter.count == 2


def test_learns_a_trivially_separable_task(tiny_proto):
    keras.utils.set_random_seed(1)
    tokenizer = AlbertTokenizer(proto=tiny_proto)
    model = AlbertTextClassifier(
        AlbertBackbone(**tiny_backbone_kwargs()),
        num_classes=2,
        preprocessor=AlbertTextClassifierPreprocessor(tokenizer, sequence_length=8),
        dropout=0.0,
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    texts = ["amazing wonderful"] * 8 + ["dull boring"] * 8
    labels = [1] * 8 + [0] * 8
    model.fit(texts, labels, batch_size=4, epochs=15, verbose=0)
    _, accuracy = model.evaluate(texts, labels, verbose=0)
    assert accuracy == 1.0


def test_pairs_of_strings(classifier):
    logits = classifier.predict((TEXTS, TEXTS[::-1]), verbose=0)
    assert logits.shape == (4, 2)
    # The usual mistakes with pairs get messages that say what to pass.
    with pytest.raises(ValueError, match="same batch size; got 4 and 3"):
        classifier.predict((TEXTS, TEXTS[1:]), verbose=0)
    with pytest.raises(ValueError, match="list of pairs; pass pairs as a tuple"):
        classifier.predict([(TEXTS[0], TEXTS[1])], verbose=0)
    with pytest.raises(ValueError, match=r'predict\(\(\["a text"\], \["its pair"'):
        classifier.predict((TEXTS[0], TEXTS[1]), verbose=0)


def test_text_pairs_setting_is_saved_and_enforced(classifier, tmp_path):
    from albert_tf.models import AlbertTextClassifierPreprocessor

    tokenizer = classifier.preprocessor.tokenizer
    pairs_only = AlbertTextClassifierPreprocessor(tokenizer, 8, text_pairs=True)
    model = AlbertTextClassifier(
        classifier.backbone, num_classes=2, preprocessor=pairs_only
    )
    model.save(tmp_path / "pairs.keras")
    loaded = load_classifier(str(tmp_path / "pairs.keras"))
    assert loaded.preprocessor.text_pairs is True
    np.testing.assert_allclose(
        loaded.predict((TEXTS, TEXTS[::-1]), verbose=0),
        model.predict((TEXTS, TEXTS[::-1]), verbose=0),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="trained on text pairs"):
        loaded.fit(TEXTS, LABELS, verbose=0)
    loaded.preprocessor.text_pairs = False
    with pytest.raises(ValueError, match="trained on single texts"):
        loaded.evaluate((TEXTS, TEXTS), LABELS, verbose=0)
    with pytest.raises(ValueError, match="`text_pairs` must be True, False or None"):
        AlbertTextClassifierPreprocessor(tokenizer, 8, text_pairs="yes")


def test_preprocessed_dicts_without_preprocessor(classifier):
    model = AlbertTextClassifier(classifier.backbone, num_classes=2, preprocessor=None)
    model.compile()
    x = classifier.preprocessor(tf.constant(TEXTS))
    x = {k: v.numpy() for k, v in x.items()}
    model.fit(x, np.array(LABELS), batch_size=2, verbose=0)
    assert model.predict(x, verbose=0).shape == (4, 2)


@pytest.mark.parametrize(
    "activation",
    ["softmax", keras.ops.softmax, tf.nn.softmax],
    ids=["name", "keras.ops", "tf.nn"],
)
def test_softmax_activation_returns_probabilities(classifier, activation):
    model = AlbertTextClassifier(
        classifier.backbone,
        num_classes=3,
        preprocessor=classifier.preprocessor,
        activation=activation,
    )
    model.compile()
    assert not model.loss.from_logits
    probabilities = model.predict(TEXTS, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    # Exports, TFLite builds and `evaluate` report log-probabilities as logits.
    logits, same = model.logits_and_probabilities(probabilities)
    np.testing.assert_allclose(logits, np.log(probabilities), rtol=1e-6)
    np.testing.assert_array_equal(same, probabilities)
    # An underflowed probability gives a floored logit, not -inf.
    logits, _ = model.logits_and_probabilities(np.array([[1.0, 0.0]], np.float32))
    np.testing.assert_array_equal(logits, [[0.0, np.log(np.finfo(np.float32).tiny)]])


def test_a_logits_head_reports_softmax_probabilities(classifier):
    logits = classifier.predict(TEXTS, verbose=0)
    same, probabilities = classifier.logits_and_probabilities(logits)
    np.testing.assert_array_equal(same, logits)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits), rtol=1e-6)


def test_freezing_the_backbone(classifier):
    model = AlbertTextClassifier(
        AlbertBackbone(**tiny_backbone_kwargs()),
        num_classes=2,
        preprocessor=classifier.preprocessor,
    )
    model.backbone.trainable = False
    model.compile()
    before = [w.numpy().copy() for w in model.backbone.weights]
    head_before = model.output_dense.kernel.numpy().copy()
    model.fit(TEXTS, LABELS, batch_size=2, verbose=0)
    for a, b in zip(before, model.backbone.weights, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    assert not np.array_equal(head_before, model.output_dense.kernel.numpy())


def test_calling_on_strings_is_a_clear_error(classifier):
    with pytest.raises(ValueError, match="does not preprocess"):
        classifier(tf.constant(TEXTS))


def test_a_single_string_an_empty_list_or_missing_preprocessor_are_clear(
    classifier,
):
    for x in ("a text", ("a text", "a pair"), np.array("a text")):
        with pytest.raises(ValueError, match="received a single string"):
            classifier.predict(x)
    with pytest.raises(ValueError, match="empty list"):
        classifier.predict([])
    # Unbatched datasets, the tf.data habit: Keras itself fails on a shape.
    unbatched = tf.data.Dataset.from_tensor_slices((TEXTS, LABELS))
    for method, ds in [("fit", unbatched), ("predict", unbatched.map(lambda t, y: t))]:
        with pytest.raises(ValueError, match=r"Batch it first, e.g. `dataset.batch"):
            getattr(classifier, method)(ds, verbose=0)
    bare = AlbertTextClassifier(classifier.backbone, num_classes=2, preprocessor=None)
    with pytest.raises(ValueError, match="no preprocessor, so it takes token ids"):
        bare.predict(["a text"])


def test_labels_may_be_names_and_bad_labels_or_texts_are_named(classifier):
    names = [classifier.label_names[i] for i in LABELS]
    by_id = classifier.evaluate(TEXTS, LABELS, verbose=0)
    np.testing.assert_allclose(classifier.evaluate(TEXTS, names, verbose=0), by_id)
    np.testing.assert_allclose(
        classifier.evaluate(TEXTS, np.array(names, dtype=bytes), verbose=0), by_id
    )
    # Ids read from a file as text ("1"), as data files take them.
    as_text = [str(i) for i in LABELS]
    np.testing.assert_allclose(classifier.evaluate(TEXTS, as_text, verbose=0), by_id)
    as_text = tf.data.Dataset.from_tensor_slices((TEXTS, as_text)).batch(2)
    np.testing.assert_allclose(classifier.evaluate(as_text, verbose=0), by_id)
    # Names in a tf.data.Dataset too (Keras failed on "Cast string to float").
    named = tf.data.Dataset.from_tensor_slices((TEXTS, names)).batch(2)
    np.testing.assert_allclose(classifier.evaluate(named, verbose=0), by_id)
    unknown = tf.data.Dataset.from_tensor_slices((TEXTS, ["neutral"] * 4)).batch(2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not one of this mod"):
        classifier.evaluate(unknown, verbose=0)
    for y, message in [
        (["positive", "neutral", "positive", "negative"], "'neutral' .entry 1. is not"),
        ([0, 1, 2, 0], "Label 2 .entry 2. is not a class id: this model has 2"),
        (["0", "1", "2", "0"], "Label '2' .entry 2. is not one of this model's"),
        ([0, 1], "Got 4 inputs but 2 labels"),
    ]:
        with pytest.raises(ValueError, match=message):
            classifier.evaluate(TEXTS, y, verbose=0)
    bare = AlbertTextClassifier(
        classifier.backbone, num_classes=2, preprocessor=classifier.preprocessor
    )
    with pytest.raises(ValueError, match="has no `label_names`; pass class ids"):
        bare.fit(TEXTS, names, verbose=0)
    with pytest.raises(ValueError, match=r"entry 0 is dict \(for rows of dicts"):
        classifier.predict([{"text": "a"}], verbose=0)
    with pytest.raises(ValueError, match="entry 1 is NoneType"):
        classifier.predict(["a", None], verbose=0)


def test_label_names_are_validated(classifier):
    with pytest.raises(ValueError, match="one name per class"):
        AlbertTextClassifier(classifier.backbone, num_classes=3, label_names=["a"])
    with pytest.raises(ValueError, match="single string 'ab'"):
        AlbertTextClassifier(classifier.backbone, num_classes=2, label_names="ab")
    with pytest.raises(ValueError, match="must be distinct"):
        AlbertTextClassifier(classifier.backbone, num_classes=2, label_names=["a"] * 2)
    too_long = AlbertTextClassifierPreprocessor(
        classifier.preprocessor.tokenizer,
        sequence_length=classifier.backbone.max_sequence_length + 1,
    )
    with pytest.raises(ValueError, match="exceeds the backbone's `max_sequence"):
        AlbertTextClassifier(classifier.backbone, num_classes=2, preprocessor=too_long)
    small = AlbertBackbone(**tiny_backbone_kwargs(vocabulary_size=50))
    with pytest.raises(ValueError, match="has 80 pieces but the backbone's `voc"):
        AlbertTextClassifier(small, num_classes=2, preprocessor=classifier.preprocessor)


def test_keras_file_round_trip_with_vocabulary(classifier, tmp_path):
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    loaded = load_classifier(str(path), compile=True)
    assert isinstance(loaded, AlbertTextClassifier)
    assert loaded.label_names == ["positive", "negative"]
    assert (
        loaded.preprocessor.tokenizer.proto == classifier.preprocessor.tokenizer.proto
    )
    np.testing.assert_allclose(
        loaded.predict(TEXTS, verbose=0),
        classifier.predict(TEXTS, verbose=0),
        atol=1e-6,
    )
    assert loaded.compiled  # Compile config restored: training can resume.
    loaded.fit(TEXTS, LABELS, batch_size=2, verbose=0)
    loaded.save(path)
    # compile=True restores the optimizer's state; the default starts afresh.
    steps = int(loaded.optimizer.iterations)
    assert steps > 0
    resumed = load_classifier(str(path), compile=True)
    assert int(resumed.optimizer.iterations) == steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # No "Skipping variable loading" noise.
        fresh = load_classifier(str(path))
    assert int(fresh.optimizer.iterations) == 0
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_classifier(str(tmp_path / "missing.keras"))
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.keras' is not a readable"):
        load_classifier(str(truncated))
    # A zip whose members are damaged (a CRC error, a cut-short member).
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    for name, damage in [
        ("model.weights.h5", lambda b: b[:100] + bytes(len(b) - 100)),
        ("config.json", lambda b: b[: len(b) // 2]),
    ]:
        damaged = tmp_path / "damaged.keras"
        with zipfile.ZipFile(damaged, "w") as target:
            for member, data in members.items():
                target.writestr(member, damage(data) if member == name else data)
        with pytest.raises(ValueError, match=r"Cannot load '.*damaged.keras': "):
            load_classifier(str(damaged))
    flipped = bytearray(path.read_bytes())  # The middle is in the weights.
    flipped[len(flipped) // 2] ^= 0xFF
    damaged.write_bytes(flipped)
    with pytest.raises(ValueError, match=r"damaged.keras': Bad CRC-32"):
        load_classifier(str(damaged))
    # Folders that hold a model in another form get a pointer to it.
    with pytest.raises(FileNotFoundError, match=r"holds a trained model: pass '.*"):
        load_classifier(str(tmp_path))


def test_config_round_trip(classifier):
    config = keras.saving.serialize_keras_object(classifier)
    restored = keras.saving.deserialize_keras_object(config)
    assert restored.get_config()["num_classes"] == 2
    assert restored.backbone.get_config() == classifier.backbone.get_config()
    assert restored.preprocessor.get_config() == classifier.preprocessor.get_config()


@pytest.mark.parametrize(
    "activation",
    ["softmax", keras.ops.softmax, tf.nn.softmax],
    ids=["name", "keras.ops", "tf.nn"],
)
def test_config_round_trip_keeps_the_head_arguments(classifier, activation):
    model = AlbertTextClassifier(
        classifier.backbone,
        num_classes=3,
        activation=activation,
        dropout=0.3,
        label_names=["a", "b", "c"],
    )
    # Serialized (`tf.nn.softmax` could not be by itself), then restored.
    config = keras.saving.serialize_keras_object(model)
    restored = keras.saving.deserialize_keras_object(config)
    assert restored.activation is keras.activations.softmax
    assert (restored.dropout, restored.output_dropout.rate) == (0.3, 0.3)
    assert restored.label_names == ["a", "b", "c"]
    restored.set_weights(model.get_weights())
    x = classifier.preprocessor(tf.constant(TEXTS))
    probabilities = restored(x).numpy()
    np.testing.assert_allclose(probabilities, model(x), atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
