import dataclasses

import numpy as np
import pytest

from pipeline.model import fused_gru
from pipeline.model import network
from test_model import TINY, _data

DEFAULT_LIKE = dataclasses.replace(TINY, word_dropout=0.1,
                                   embedding_dropout=0.2)


@pytest.fixture(scope="module")
def trained():
    classifier, _ = network.train_classifier(*_data(), vocabulary_size=30, config=DEFAULT_LIKE)
    return classifier


@pytest.mark.parametrize("staged_from_rows", [1, 10_000], ids=["staged", "one stage"])
def test_fused_graph_equals_the_keras_model_on_every_kind_of_row(trained, staged_from_rows,
                                                                  monkeypatch):
    monkeypatch.setattr(fused_gru, "_STAGED_FROM_ROWS", staged_from_rows)
    fused = fused_gru.fuse(trained)
    assert fused is not None
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 30, size=(40, 9)).astype("int32")  # 1 = unknown word
    lengths = rng.integers(0, 10, size=40)                   # 0: an empty message
    ids[np.arange(9) >= lengths[:, None]] = 0
    ids[::5, 1] = 0  # a padding id inside a message: a step that keeps the state
    expected = network.predict_probabilities(trained, ids)
    np.testing.assert_allclose(fused(ids).numpy(), expected, atol=1e-6)
    # a padded step keeps the state exactly: trailing padding does not change a single bit
    np.testing.assert_array_equal(fused(np.pad(ids, [(0, 0), (0, 4)])).numpy(),
                                  fused(ids).numpy())
    # a row's score depends neither on its place in the batch nor on how many rows the
    # batch has (staged: rows run longest first; fewer rows than stages, or none)
    order = rng.permutation(len(ids))
    np.testing.assert_allclose(fused(ids[order]).numpy(), fused(ids).numpy()[order],
                               atol=1e-6)
    for rows in (0, 1, 2, 3, 5):
        np.testing.assert_allclose(fused(ids[:rows]).numpy(), expected[:rows], atol=1e-6)


MESSAGES = ["WIN a FREE prize now!! call 09061701461", "see you at 8?", "", "ok",
            "Claim your £900 reward at www.example.com today", "lunch? i'm starving",
            "Txt STOP to 87121", "héllo wörld ünïcode 😀"] * 4


def test_a_model_of_another_architecture_keeps_the_keras_call():
    import keras

    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(30, 8, mask_zero=True)(ids)
    x = keras.layers.LSTM(4)(x)
    assert fused_gru.fuse(keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(x))) \
        is None
    x = keras.layers.Bidirectional(keras.layers.GRU(4))(
        keras.layers.Embedding(30, 8, mask_zero=True)(ids))
    assert fused_gru.fuse(keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(x))) \
        is None


def test_fused_graph_with_char_grams_equals_the_keras_model():
    import tensorflow as tf

    from pipeline.data import text

    words = ["a", "now", "you", "to", "at", "prize"]
    config = dataclasses.replace(DEFAULT_LIKE, char_gram_buckets=257, char_gram_dim=4,
                                 max_length=5, word_branch_dropout=0.3)
    inputs = text.encode_inputs(MESSAGES, words, config.max_length, config.char_gram_buckets)
    labels = np.array([i % 2 for i in range(len(MESSAGES))], bool)
    classifier, _ = network.train_classifier(inputs, labels, inputs, labels,
                                           len(words) + text.RESERVED_TOKENS, config)
    fused = fused_gru.fuse(classifier, words)
    assert fused is not None and fused.char_gram_logits is not None
    tokens = text.tokenize(tf.constant(MESSAGES))
    token_ids = tf.ragged.map_flat_values(text.make_lookup(words).lookup, tokens)
    ids = text.padded_ids(token_ids, config.max_length)
    np.testing.assert_allclose(fused(ids, tokens, token_ids).numpy(),
                               network.predict_probabilities(classifier, inputs), atol=1e-6)


@pytest.mark.parametrize("word_grams", [0, 1, 2])
def test_fused_graph_with_the_ngram_member_equals_the_keras_model(word_grams):
    import tensorflow as tf

    from pipeline.data import text

    words = ["a", "now", "you", "to", "at", "prize"]
    config = dataclasses.replace(DEFAULT_LIKE, char_gram_buckets=257, char_gram_dim=4,
                                 max_length=5, word_branch_dropout=0.3,
                                 word_grams=word_grams, ngram_member=0.25)
    inputs = text.encode_inputs(MESSAGES, words, config.max_length, config.char_gram_buckets,
                                word_grams)
    assert ("word_gram_ids" in inputs) == bool(word_grams)
    labels = np.array([i % 2 for i in range(len(MESSAGES))], bool)
    classifier, _ = network.train_classifier(inputs, labels, inputs, labels,
                                           len(words) + text.RESERVED_TOKENS, config)
    fused = fused_gru.fuse(classifier, words, word_grams)
    assert fused is not None and fused.member_weight == 0.25
    tokens = text.tokenize(tf.constant(MESSAGES))
    token_ids = tf.ragged.map_flat_values(text.make_lookup(words).lookup, tokens)
    ids = text.padded_ids(token_ids, config.max_length)
    np.testing.assert_allclose(fused(ids, tokens, token_ids).numpy(),
                               network.predict_probabilities(classifier, inputs), atol=1e-6)
