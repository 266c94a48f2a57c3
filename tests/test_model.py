import numpy as np
import pytest

from pipeline.model import layers
from pipeline.model import network

TINY = network.ModelConfig(embedding_dim=8, rnn_units=4,
                         dropout=0.1, word_dropout=0.0, embedding_dropout=0.0, max_length=6, learning_rate=0.01,
                         batch_size=8, epochs=3, early_stopping_patience=0, seed=3,
                         char_gram_buckets=0, word_branch_dropout=0.0,  # words only
                         word_grams=0, ngram_member=0.0, teacher_weight=0.0)


def _data():
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 30, size=(64, 6)).astype("int32")
    labels = (ids[:, 0] > 15)  # learnable from the first token
    return ids[:48], labels[:48], ids[48:], labels[48:]


def test_same_seed_gives_the_same_weights_and_history():
    first, history_a = network.train_classifier(*_data(), vocabulary_size=30, config=TINY)
    second, history_b = network.train_classifier(*_data(), vocabulary_size=30, config=TINY)
    assert network.weights_checksum(first) == network.weights_checksum(second)
    assert history_a == history_b
    assert len(history_a) == 3


def test_training_runs_without_constant_folding_and_restores_it_afterwards():
    import tensorflow as tf

    def folding() -> bool:
        return tf.config.optimizer.get_experimental_options().get("constant_folding", True)

    during = []
    network.train_classifier(*_data(), vocabulary_size=30, config=TINY,
                           on_epoch=lambda epoch, logs: during.append(folding()))
    assert during == [False, False, False]  # every epoch trained with it off
    assert folding()  # scoring and the export afterwards keep TensorFlow's default


def test_another_seed_gives_other_weights():
    first, _ = network.train_classifier(*_data(), vocabulary_size=30, config=TINY)
    other = network.ModelConfig(**{**TINY.as_dict(), "seed": 4})
    second, _ = network.train_classifier(*_data(), vocabulary_size=30, config=other)
    assert network.weights_checksum(first) != network.weights_checksum(second)


def test_the_classifier_builds_and_predicts_probabilities():
    classifier = network.build_classifier(30, TINY)
    assert [layer.name for layer in classifier.layers if layer.weights] == [
        "embedding", "gru", "spam_probability"]
    p = network.predict_probabilities(classifier, np.array([[2, 3, 0, 0]], "int32"))
    assert p.shape == (1,) and 0.0 <= p[0] <= 1.0


def test_reported_epochs_match_the_history():
    seen = []
    _, history = network.train_classifier(*_data(), vocabulary_size=30, config=TINY,
                                        on_epoch=lambda epoch, logs: seen.append((epoch, logs)))
    assert [e for e, _ in seen] == [1, 2, 3]
    assert seen[-1][1]["val_loss"] == history[-1]["val_loss"]


def test_word_dropout_hides_known_words_only_in_training():
    layer = layers.WordDropout(rate=0.3, seed=1)
    ids = np.array([[5, 6, 7, 1, 0, 0]] * 200 + [[9, 8, 2, 3, 4, 1]] * 200, "int32")
    assert np.array_equal(np.asarray(layer(ids, training=False)), ids)
    out = np.asarray(layer(ids, training=True))
    known = ids > 1
    assert np.array_equal(out[~known], ids[~known])  # padding and unknown ids untouched
    hidden = out[known] == 1
    assert set(np.unique(out[known][~hidden])) <= set(np.unique(ids[known]))
    assert 0.25 < hidden.mean() < 0.35


def test_word_dropout_training_is_still_reproducible():
    config = network.ModelConfig(**{**TINY.as_dict(), "word_dropout": 0.2})
    first, _ = network.train_classifier(*_data(), vocabulary_size=30, config=config)
    second, _ = network.train_classifier(*_data(), vocabulary_size=30, config=config)
    assert network.weights_checksum(first) == network.weights_checksum(second)


def test_embedding_dropout_is_reproducible_keeps_the_mask_and_is_off_at_inference():
    config = network.ModelConfig(**{**TINY.as_dict(), "embedding_dropout": 0.3})
    first, _ = network.train_classifier(*_data(), vocabulary_size=30, config=config)
    second, _ = network.train_classifier(*_data(), vocabulary_size=30, config=config)
    assert network.weights_checksum(first) == network.weights_checksum(second)
    plain, _ = network.train_classifier(*_data(), vocabulary_size=30, config=TINY)
    assert network.weights_checksum(first) != network.weights_checksum(plain)
    ids = np.array([[5, 6, 7, 0], [9, 8, 0, 0]], "int32")
    padded = np.pad(ids, [(0, 0), (0, 5)])
    p = network.predict_probabilities(first, ids)
    np.testing.assert_array_equal(p, network.predict_probabilities(first, ids))  # inference: no noise
    np.testing.assert_allclose(network.predict_probabilities(first, padded), p, atol=1e-6)


def _with_grams(ids: np.ndarray) -> dict:
    """Inputs for a model with n-grams: stand-in n-gram and word-gram ids derived from
    the token ids (the member only needs ids in range)."""
    return {"token_ids": ids, "char_gram_ids": ids * 3 % 97, "word_gram_ids": ids * 7 % 97}


def test_the_ngram_member_adds_its_log_odds_and_reports_each_loss():
    config = network.ModelConfig(**{**TINY.as_dict(), "char_gram_buckets": 97,
                                  "word_grams": 2, "ngram_member": 0.5})
    train_ids, train_labels, val_ids, val_labels = _data()
    classifier, history = network.train_classifier(
        _with_grams(train_ids), train_labels, _with_grams(val_ids), val_labels,
        vocabulary_size=30, config=config)
    row = history[-1]
    # the network's metrics keep their plain names; the loss early stopping watches is
    # the sum of the two members' losses
    assert {"val_accuracy", "val_auc", "val_spam_caught"} <= set(row)
    assert row["val_loss"] == pytest.approx(row["val_network_loss"] + row["val_member_loss"],
                                            rel=1e-5)
    assert "val_served_loss" in row  # the output's, which early stopping watches
    words_output = classifier.get_layer("spam_probability").output
    member = classifier.get_layer("member_probability").output
    import keras
    parts = keras.Model(classifier.inputs, [words_output, member]).predict(_with_grams(val_ids),
                                                                     verbose=0)
    logit = [np.log(p.reshape(-1)) - np.log1p(-p.reshape(-1)) for p in parts]
    expected = 1 / (1 + np.exp(-(logit[0] + 0.5 * logit[1])))
    np.testing.assert_allclose(network.predict_probabilities(classifier, _with_grams(val_ids)),
                               expected, atol=1e-5)


def test_the_ngram_member_needs_ngrams():
    config = network.ModelConfig(**{**TINY.as_dict(), "ngram_member": 0.15})
    with pytest.raises(ValueError, match="ngram_member = 0"):
        network.build_classifier(30, config)


def test_with_the_ngram_member_early_stopping_watches_the_served_output():
    config = network.ModelConfig(**{**TINY.as_dict(), "char_gram_buckets": 97, "word_grams": 1,
                                  "ngram_member": 0.5, "epochs": 30,
                                  "early_stopping_patience": 2})
    train_ids, train_labels, val_ids, val_labels = _data()
    _, history = network.train_classifier(
        _with_grams(train_ids), train_labels, _with_grams(val_ids), val_labels,
        vocabulary_size=30, config=config)
    best = int(np.argmin([row["val_served_loss"] for row in history]))
    assert len(history) == min(config.epochs, best + 1 + config.early_stopping_patience)


def _teacher_scores(labels: np.ndarray) -> np.ndarray:
    """Stand-in teacher scores: confident where the label is, unsure on every fourth."""
    scores = np.where(labels, 0.9, 0.1).astype("float32")
    scores[::4] = 0.5
    return scores


def test_the_teacher_head_learns_beside_the_labels_and_is_not_served():
    config = network.ModelConfig(**{**TINY.as_dict(), "char_gram_buckets": 97, "word_grams": 1,
                                  "ngram_member": 0.5, "teacher_weight": 0.3})
    train_ids, train_labels, val_ids, val_labels = _data()
    taught, history = network.train_classifier(
        _with_grams(train_ids), train_labels, _with_grams(val_ids), val_labels,
        vocabulary_size=30, config=config, teacher_scores=_teacher_scores(train_labels))
    row = history[-1]
    assert {"teacher_loss", "val_teacher_loss", "val_served_loss", "val_auc"} <= set(row)
    # the summed loss counts the head's loss 0.3 times
    assert row["loss"] == pytest.approx(row["network_loss"] + row["member_loss"]
                                        + 0.3 * row["teacher_loss"], rel=1e-4)
    # the returned model serves one probability, from the network and the member only
    assert len(taught.outputs) == 1
    assert "teacher_score" not in [layer.name for layer in taught.layers]
    untaught, _ = network.train_classifier(
        _with_grams(train_ids), train_labels, _with_grams(val_ids), val_labels,
        vocabulary_size=30, config=network.ModelConfig(**{**config.as_dict(),
                                                        "teacher_weight": 0.0}))
    assert network.weights_checksum(taught) != network.weights_checksum(untaught)


def test_the_teacher_head_works_without_the_ngram_member():
    config = network.ModelConfig(**{**TINY.as_dict(), "teacher_weight": 1.0,
                                  "early_stopping_patience": 2})
    train_ids, train_labels, val_ids, val_labels = _data()
    taught, history = network.train_classifier(
        train_ids, train_labels, val_ids, val_labels, vocabulary_size=30, config=config,
        teacher_scores=_teacher_scores(train_labels))
    assert {"val_network_loss", "val_teacher_loss", "val_accuracy"} <= set(history[-1])
    p = network.predict_probabilities(taught, val_ids)
    assert p.shape == (len(val_ids),) and ((0 <= p) & (p <= 1)).all()


def test_a_teacher_weight_without_teacher_scores_is_refused():
    config = network.ModelConfig(**{**TINY.as_dict(), "teacher_weight": 0.3})
    with pytest.raises(ValueError, match="no teacher_scores"):
        network.train_classifier(*_data(), vocabulary_size=30, config=config)
    train_ids, train_labels, val_ids, val_labels = _data()
    with pytest.raises(ValueError, match="47 teacher scores for 48 training messages"):
        network.train_classifier(train_ids, train_labels, val_ids, val_labels, vocabulary_size=30,
                               config=config, teacher_scores=_teacher_scores(train_labels)[1:])
    with pytest.raises(ValueError, match="teacher_weight -0.1 is negative"):
        network.build_classifier(30, network.ModelConfig(**{**TINY.as_dict(),
                                                        "teacher_weight": -0.1}))
