"""The recurrent spam classifier: build it from its settings and train it.

Pure Keras code, no Luigi: ``train_classifier`` is the one public entry used by the
pipeline and by the benchmarks.
"""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

import keras
import tensorflow as tf

from pipeline.model.config import ModelConfig
from pipeline.model.layers import AddLogOdds, MeanBagEmbedding, WordDropout

__all__ = ["ModelConfig", "build_classifier", "train_classifier", "predict_probabilities"]

EpochCallback = Callable[[int, dict], None]
_OOV_ID = 1  # pipeline.data.text.OOV_ID; not imported, to keep this module free of text handling


# The training-only output that learns the teacher's score (pipeline.model.teacher).
TEACHER_OUTPUT = "teacher"

# The n-gram member: a linear model over the mean of each message's hashed character
# n-grams and the mean of its hashed word 1-2-grams (one weight each, table scale 30).
_MEMBER_SCALE = 30.0


def model_inputs(config: ModelConfig):
    """The Keras inputs: ``token_ids`` alone, or a dict with ``char_gram_ids``."""
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    if not config.char_gram_buckets:
        return token_ids
    inputs = {"token_ids": token_ids,
              "char_gram_ids": keras.Input(shape=(None,), dtype="int32", name="char_gram_ids")}
    if config.word_grams:
        inputs["word_gram_ids"] = keras.Input(shape=(None,), dtype="int32",
                                              name="word_gram_ids")
    return inputs


def build_classifier(vocabulary_size: int, config: ModelConfig,
                     name: str = "spam_rnn", for_training: bool = False) -> keras.Model:
    """Embedding -> GRU (final state) [+ mean character n-gram embedding] -> dropout ->
    spam probability.

    Optional in training only: word dropout before the embedding, channel (spatial)
    dropout after it, and word-branch dropout (the recurrent summary of a whole message
    hidden, so the n-grams alone must classify it).

    Input: ``[batch, time]`` int32 ids, 0 for padding (masked), 1 for unknown words; with
    ``char_gram_buckets``, a dict of those ``token_ids`` and ``[batch, n-grams]``
    ``char_gram_ids`` (:func:`pipeline.text.encode_inputs`), and ``word_gram_ids`` with
    ``word_grams``.

    With ``ngram_member``, a second member, a linear model over the mean hashed character
    n-grams (and word 1-2-grams) of each message with its own tables, learns beside it on
    its own loss; the model's output adds ``ngram_member`` times the member's log-odds
    to the main model's. ``for_training`` returns three outputs: the
    network's (``network``), the member's (``member``) and that sum (``served``).

    With ``teacher_weight``, ``for_training`` adds a :data:`TEACHER_OUTPUT`: a second
    head on the network's features that learns the teacher's score (training only; the
    model :func:`train_classifier` returns has no such output).
    """
    if config.teacher_weight < 0:
        raise ValueError(f"teacher_weight {config.teacher_weight} is negative; use 0 to train "
                         "without the teacher")
    inputs = model_inputs(config)
    x = inputs["token_ids"] if config.char_gram_buckets else inputs
    if config.word_dropout > 0:
        x = WordDropout(config.word_dropout, seed=config.seed, name="word_dropout")(x)
    x = keras.layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True,
                               name="embedding")(x)
    if config.embedding_dropout > 0:
        # the same channels dropped at every word of a message (keeps the padding mask)
        x = keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(x)
    x = keras.layers.GRU(config.rnn_units, name="gru")(x)
    if config.char_gram_buckets:
        grams = MeanBagEmbedding(config.char_gram_buckets, config.char_gram_dim,
                                 name="char_grams")(inputs["char_gram_ids"])
        if config.word_branch_dropout > 0:
            # hide the recurrent summary of whole messages, so that the n-grams alone
            # learn to classify (as they must for messages made of unseen words)
            x = keras.layers.Dropout(config.word_branch_dropout, noise_shape=(None, 1),
                                     seed=config.seed, name="word_branch_dropout")(x)
        x = keras.layers.Concatenate(name="words_and_char_grams")([x, grams])
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    probability = keras.layers.Dense(1, activation="sigmoid", name="spam_probability")(x)
    outputs = {"network": probability}
    if for_training and config.teacher_weight:
        outputs[TEACHER_OUTPUT] = keras.layers.Dense(1, activation="sigmoid",
                                                     name="teacher_score")(x)
    if config.ngram_member:
        if not config.char_gram_buckets:
            raise ValueError("ngram_member > 0 needs char_gram_buckets > 0 (the member reads "
                             "the n-grams); set ngram_member = 0 for a words-only model")
        bags = [MeanBagEmbedding(config.char_gram_buckets, 1, _MEMBER_SCALE,
                                 name="member_char_grams")(inputs["char_gram_ids"])]
        if config.word_grams:
            bags.append(MeanBagEmbedding(config.char_gram_buckets, 1, _MEMBER_SCALE,
                                         name="member_word_grams")(inputs["word_gram_ids"]))
        bag = bags[0] if len(bags) == 1 else keras.layers.Concatenate(name="member_bags")(bags)
        member = keras.layers.Dense(1, activation="sigmoid", name="member_probability")(bag)
        served = AddLogOdds(config.ngram_member, name="members")([probability, member])
        outputs.update(member=member, served=served)
        probability = served
    if for_training and len(outputs) > 1:
        return keras.Model(inputs, outputs, name=name)
    return keras.Model(inputs, probability, name=name)


def _history_key(key: str, metrics_output: str) -> str:
    """A metric's name in the history. With several outputs (the n-gram member, the
    teacher's head), Keras prefixes the quality metrics with the output that carries
    them, ``metrics_output`` ("val_network_auc"); they keep their plain names ("val_auc").
    "loss" is the weighted sum of the outputs' losses, beside each output's own
    ("network_loss", "member_loss", "served_loss": the output early stopping watches)."""
    for prefix in ("val_", ""):
        if key.startswith(prefix + metrics_output + "_") and not key.endswith("_loss"):
            return prefix + key[len(prefix + metrics_output + "_"):]
    return key


class _EpochReporter(keras.callbacks.Callback):
    def __init__(self, report: EpochCallback, metrics_output: str):
        super().__init__()
        self._report = report
        self._metrics_output = metrics_output

    def on_epoch_end(self, epoch, logs=None):
        self._report(epoch + 1, {_history_key(k, self._metrics_output): float(v)
                                 for k, v in (logs or {}).items()})


def make_deterministic(seed: int) -> None:
    """Seed Python, numpy and TensorFlow and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_classifier(train_ids, train_labels: np.ndarray,
                     validation_ids, validation_labels: np.ndarray,
                     vocabulary_size: int, config: ModelConfig,
                     on_epoch: EpochCallback | None = None,
                     log_dir: Path | None = None,
                     teacher_scores: np.ndarray | None = None) -> tuple[keras.Model, list[dict]]:
    """Train with early stopping on validation loss; return the model and per-epoch history.

    With ``log_dir``, each epoch's training and validation metrics are also written there
    for TensorBoard (``tensorboard --logdir <log_dir>``).

    ``train_ids`` and ``validation_ids`` are the model's inputs: an array of token ids, or
    the dict of :func:`pipeline.text.encode_inputs` with character n-grams.

    With ``teacher_weight`` > 0, ``teacher_scores`` (one per training message, in (0, 1);
    :func:`pipeline.teacher.out_of_fold_scores`) are the targets of a training-only head
    on the network's features, whose loss counts ``teacher_weight`` times; the served
    output still learns ``train_labels``. On the validation split that head is measured
    against the true labels; nothing watches its loss.
    """
    if config.teacher_weight > 0 and teacher_scores is None:
        raise ValueError(f"teacher_weight is {config.teacher_weight} but no teacher_scores "
                         "were given: pass pipeline.teacher.out_of_fold_scores(...) or set "
                         "teacher_weight = 0")
    if teacher_scores is not None and len(teacher_scores) != len(train_labels):
        raise ValueError(f"{len(teacher_scores)} teacher scores for {len(train_labels)} "
                         "training messages")
    make_deterministic(config.seed)
    model = build_classifier(vocabulary_size, config, "spam_rnn", for_training=True)
    history = _fit(model, train_ids, train_labels, validation_ids, validation_labels, config,
                   on_epoch, log_dir, teacher_scores)
    if len(model.outputs) == 1:
        return model, history
    # what is served: the model without its training-only outputs
    served_layer = "members" if config.ngram_member else "spam_probability"
    return keras.Model(model.inputs, model.get_layer(served_layer).output,
                       name=model.name), history


def _loss_weights(config: ModelConfig) -> dict[str, float]:
    """The loss weight of each output: the network and the n-gram member learn the labels
    on their own losses, the teacher's head its score; what is served (the n-gram
    member's sum) is only measured: no gradient."""
    return {"network": 1.0, "member": 1.0, "served": 0.0, TEACHER_OUTPUT: config.teacher_weight}


def _fit(model: keras.Model, train_ids, train_labels, validation_ids, validation_labels,
         config: ModelConfig, on_epoch: EpochCallback | None, log_dir: Path | None,
         teacher_scores: np.ndarray | None) -> list[dict]:
    """Compile and fit ``model`` with early stopping; returns the history, one row per
    epoch."""
    quality = [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc"),
               keras.metrics.Recall(name="spam_caught")]
    outputs = list(model.output) if isinstance(model.output, dict) else []
    taught = config.teacher_weight > 0
    if taught:  # the labels travel with the teacher's scores, a column each
        train_labels = np.stack([train_labels, teacher_scores], axis=1)
        validation_labels = np.stack([validation_labels, validation_labels], axis=1)
    train_data = batches(train_ids, train_labels, config.batch_size, shuffle_seed=config.seed)
    validation_data = batches(validation_ids, validation_labels, 1024)
    monitor, metrics_output = "val_loss", ""
    # each member learns on its own loss; the served output's loss (weight 0: no
    # gradient) is measured, and early stopping watches it on the validation split
    kinds = _loss_weights(config)
    weights = {output: kinds[output] for output in outputs}
    if outputs:
        metrics_output = "network"  # the quality metrics are the network's
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                        loss={output: "binary_crossentropy" for output in outputs},
                        loss_weights=weights, metrics={metrics_output: quality})

        def targets(x, y):
            if not taught:
                return x, {output: y for output in outputs}
            return x, {output: y[:, 1] if output.endswith(TEACHER_OUTPUT) else y[:, 0]
                       for output in outputs}

        train_data, validation_data = (data.map(targets)
                                       for data in (train_data, validation_data))
        monitor = "val_served_loss" if "served" in outputs else "val_network_loss"
    else:
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                      loss="binary_crossentropy",
                        metrics=quality)
    callbacks: list[keras.callbacks.Callback] = []
    if config.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode="min", patience=config.early_stopping_patience,
            restore_best_weights=True))
    if on_epoch:
        callbacks.append(_EpochReporter(on_epoch, metrics_output))
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False))
    with _without_constant_folding():
        fit = model.fit(train_data, validation_data=validation_data,
                          epochs=config.epochs, shuffle=False,  # batches() shuffles
                          callbacks=callbacks, verbose=0)
    epochs = len(next(iter(fit.history.values()), []))
    return [{"epoch": e + 1, **{_history_key(k, metrics_output): float(v[e])
                                for k, v in fit.history.items()}}
            for e in range(epochs)]


@contextlib.contextmanager
def _without_constant_folding():
    """Train with Grappler's constant folding off: seed 0 trained in a median of 65 s
    against 74 s with it (3 interleaved runs each on 2 cores), with every figure of
    bench/quality.py the same to 4 decimals at seeds 0, 1 and 2. Folding rounds some
    floats differently, so the weights are not bit-identical to a training with it.
    Scoring and the export keep TensorFlow's defaults."""
    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"constant_folding": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"constant_folding": before.get("constant_folding", True)})


def batches(inputs, labels: np.ndarray | None, batch_size: int,
            shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of the model's inputs (and labels), each cut to its longest message.

    The inputs are padded to ``max_length`` tokens, but most messages are far shorter; the
    recurrent layer's cost grows with the padded length, and padded steps change nothing
    (masked), so each batch keeps only the columns some message of it uses. With
    ``shuffle_seed``, the order is shuffled anew each epoch, reproducibly.
    """
    data = tf.data.Dataset.from_tensor_slices(
        inputs if labels is None else (inputs, labels.astype("float32")))
    if shuffle_seed is not None:
        data = data.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    trim = _cut_to_longest if labels is None else (lambda x, y: (_cut_to_longest(x), y))
    return data.batch(batch_size).map(trim).prefetch(2)


def _cut_to_longest(inputs):
    def cut(ids):
        used = tf.reduce_max(tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=1))
        return ids[:, :tf.maximum(used, 1)]
    return {name: cut(ids) for name, ids in inputs.items()} if isinstance(inputs, dict) \
        else cut(inputs)


def predict_probabilities(model: keras.Model, ids, batch_size: int = 1024) -> np.ndarray:
    return model.predict(batches(ids, None, batch_size), verbose=0).reshape(-1)


def weights_checksum(model: keras.Model) -> str:
    """sha256 over every weight array, to show two runs trained the very same model."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()
