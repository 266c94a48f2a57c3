import numpy as np

from pipeline import model

TINY = model.ModelConfig(rnn_type="gru", bidirectional=True, embedding_dim=8, rnn_units=4, pooling="last",
                         dropout=0.1, word_dropout=0.0, embedding_dropout=0.0, max_length=6, optimizer="adam", learning_rate=0.01,
                         batch_size=8, epochs=3, early_stopping_patience=0, seed=3,
                         char_gram_buckets=0, word_branch_dropout=0.0)  # words only


def _data():
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 30, size=(64, 6)).astype("int32")
    labels = (ids[:, 0] > 15)  # learnable from the first token
    return ids[:48], labels[:48], ids[48:], labels[48:]


def test_same_seed_gives_the_same_weights_and_history():
    first, history_a = model.train_classifier(*_data(), vocabulary_size=30, config=TINY)
    second, history_b = model.train_classifier(*_data(), vocabulary_size=30, config=TINY)
    assert model.weights_checksum(first) == model.weights_checksum(second)
    assert history_a == history_b
    assert len(history_a) == 3


def test_another_seed_gives_other_weights():
    first, _ = model.train_classifier(*_data(), vocabulary_size=30, config=TINY)
    other = model.ModelConfig(**{**TINY.as_dict(), "seed": 4})
    second, _ = model.train_classifier(*_data(), vocabulary_size=30, config=other)
    assert model.weights_checksum(first) != model.weights_checksum(second)


def test_every_recurrent_kind_builds_and_predicts_probabilities():
    for kind in ("gru", "lstm", "simple"):
        config = model.ModelConfig(**{**TINY.as_dict(), "rnn_type": kind, "bidirectional": False})
        classifier = model.build_classifier(30, config)
        p = model.predict_probabilities(classifier, np.array([[2, 3, 0, 0]], "int32"))
        assert p.shape == (1,) and 0.0 <= p[0] <= 1.0


def test_reported_epochs_match_the_history():
    seen = []
    _, history = model.train_classifier(*_data(), vocabulary_size=30, config=TINY,
                                        on_epoch=lambda epoch, logs: seen.append((epoch, logs)))
    assert [e for e, _ in seen] == [1, 2, 3]
    assert seen[-1][1]["val_loss"] == history[-1]["val_loss"]


def test_an_ensemble_averages_its_members_and_survives_a_safe_reload(tmp_path):
    import keras
    config = model.ModelConfig(**{**TINY.as_dict(), "ensemble_size": 2, "epochs": 2})
    ensemble, history = model.train_classifier(*_data(), vocabulary_size=30, config=config)
    assert [row["member"] for row in history] == [0, 0, 1, 1]
    ids = _data()[2]
    members = [layer for layer in ensemble.layers if isinstance(layer, keras.Model)]
    assert len(members) == 2
    expected = np.mean([model.predict_probabilities(m, ids) for m in members], axis=0)
    np.testing.assert_allclose(model.predict_probabilities(ensemble, ids), expected, atol=1e-6)
    ensemble.save(tmp_path / "ensemble.keras")
    reloaded = keras.models.load_model(tmp_path / "ensemble.keras", safe_mode=True)
    np.testing.assert_allclose(model.predict_probabilities(reloaded, ids), expected, atol=1e-6)


def test_word_dropout_hides_known_words_only_in_training():
    layer = model.WordDropout(rate=0.3, seed=1)
    ids = np.array([[5, 6, 7, 1, 0, 0]] * 200 + [[9, 8, 2, 3, 4, 1]] * 200, "int32")
    assert np.array_equal(np.asarray(layer(ids, training=False)), ids)
    out = np.asarray(layer(ids, training=True))
    known = ids > 1
    assert np.array_equal(out[~known], ids[~known])  # padding and unknown ids untouched
    hidden = out[known] == 1
    assert set(np.unique(out[known][~hidden])) <= set(np.unique(ids[known]))
    assert 0.25 < hidden.mean() < 0.35


def test_word_dropout_training_is_still_reproducible():
    config = model.ModelConfig(**{**TINY.as_dict(), "word_dropout": 0.2})
    first, _ = model.train_classifier(*_data(), vocabulary_size=30, config=config)
    second, _ = model.train_classifier(*_data(), vocabulary_size=30, config=config)
    assert model.weights_checksum(first) == model.weights_checksum(second)


def test_embedding_dropout_is_reproducible_keeps_the_mask_and_is_off_at_inference():
    config = model.ModelConfig(**{**TINY.as_dict(), "embedding_dropout": 0.3})
    first, _ = model.train_classifier(*_data(), vocabulary_size=30, config=config)
    second, _ = model.train_classifier(*_data(), vocabulary_size=30, config=config)
    assert model.weights_checksum(first) == model.weights_checksum(second)
    plain, _ = model.train_classifier(*_data(), vocabulary_size=30, config=TINY)
    assert model.weights_checksum(first) != model.weights_checksum(plain)
    ids = np.array([[5, 6, 7, 0], [9, 8, 0, 0]], "int32")
    padded = np.pad(ids, [(0, 0), (0, 5)])
    p = model.predict_probabilities(first, ids)
    np.testing.assert_array_equal(p, model.predict_probabilities(first, ids))  # inference: no noise
    np.testing.assert_allclose(model.predict_probabilities(first, padded), p, atol=1e-6)
