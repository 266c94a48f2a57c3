"""The recurrent spam classifier: build it from hyperparameters, train it, measure it.

Pure Keras code, no Luigi: ``train_classifier`` is the one public entry used by the
pipeline and by the benchmarks (the textbook RNN is just another ``ModelConfig``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

import keras
import tensorflow as tf

from pipeline.model_config import ModelConfig

__all__ = ["ModelConfig", "build_classifier", "train_classifier", "predict_probabilities"]

EpochCallback = Callable[[int, dict], None]
_OOV_ID = 1  # pipeline.text.OOV_ID; not imported, to keep this module free of text handling


_RNN_LAYERS = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM,
               "simple": keras.layers.SimpleRNN}


@keras.saving.register_keras_serializable(package="spam_pipeline")
class WordDropout(keras.layers.Layer):
    """In training, replace a random share of known word ids by the unknown-word id.

    Teaches the classifier not to hang on single words and to read messages full of words it
    never saw (the test split has many); padding and unknown ids are left alone. Identity
    at inference, so the export and serving are unaffected.
    """

    def __init__(self, rate: float, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=None):
        if not training or self.rate <= 0:
            return ids
        drop = keras.random.uniform(keras.ops.shape(ids), seed=self._generator) < self.rate
        known = ids > _OOV_ID
        return keras.ops.where(keras.ops.logical_and(drop, known),
                               keras.ops.full_like(ids, _OOV_ID), ids)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="spam_pipeline")
class MaskedMaxOverTime(keras.layers.Layer):
    """Max over the time steps that are not padding (Keras' GlobalMaxPooling1D ignores the
    mask, which would make a message's score depend on how far its batch is padded)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return keras.ops.max(inputs, axis=1)
        keep = keras.ops.expand_dims(keras.ops.cast(mask, "bool"), -1)
        lowest = keras.ops.full_like(inputs, -1e9)
        pooled = keras.ops.max(keras.ops.where(keep, inputs, lowest), axis=1)
        any_step = keras.ops.any(keep, axis=1)
        return keras.ops.where(any_step, pooled, keras.ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="spam_pipeline")
class MeanBagEmbedding(keras.layers.Layer):
    """``[batch, items]`` ids (0: padding) -> ``[batch, dim]``: the mean of their
    embeddings, zero for a row with none.

    With ``scale``, the table is stored divided by it (and the mean multiplied back), so
    that Adam's steps, about the learning rate in the stored values, are ``scale`` times
    larger in the embeddings: a bag read alone learns in as many epochs as the GRU."""

    def __init__(self, buckets: int, dim: int, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.buckets = buckets
        self.dim = dim
        self.scale = scale

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.buckets, self.dim), name="embeddings",
            initializer=keras.initializers.RandomUniform(-0.05 / self.scale,
                                                         0.05 / self.scale))

    def call(self, ids):
        vectors = keras.ops.take(self.embeddings, ids, axis=0)
        present = keras.ops.cast(keras.ops.expand_dims(ids > 0, -1), vectors.dtype)
        count = keras.ops.maximum(keras.ops.sum(present, axis=1), 1.0)
        return keras.ops.sum(vectors * present, axis=1) * (self.scale / count)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "buckets": self.buckets, "dim": self.dim,
                "scale": self.scale}


@keras.saving.register_keras_serializable(package="spam_pipeline")
class AddLogOdds(keras.layers.Layer):
    """Two members' probabilities -> ``sigmoid(logit(a) + weight * logit(b))``: the main
    model's log-odds plus a share of the other member's evidence."""

    EPSILON = 1e-7  # probabilities are clipped to [EPSILON, 1 - EPSILON] first

    def __init__(self, weight: float, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight

    def call(self, inputs):
        def logit(p):
            p = keras.ops.clip(p, self.EPSILON, 1.0 - self.EPSILON)
            return keras.ops.log(p) - keras.ops.log(1.0 - p)
        main, member = inputs
        return keras.ops.sigmoid(logit(main) + self.weight * logit(member))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="spam_pipeline")
class AdversarialShift(keras.layers.Layer):
    """Where adversarial training (``adversarial_epsilon``) moves a message's word
    embeddings; the identity everywhere else, at inference always.

    :class:`_AdversarialTraining` drives it within one training step: first it watches
    the embeddings on a gradient tape (``probe``), then it has them replaced by those same
    embeddings moved along the loss gradient (``replace``), so that the second pass reads
    the very words of the first one, after the same word dropout."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self._tape = None
        self._replacement = None
        self.seen = None

    def probe(self, tape) -> None:
        self._tape, self._replacement, self.seen = tape, None, None

    def replace(self, embeddings) -> None:
        self._tape, self._replacement = None, embeddings

    def reset(self) -> None:
        self._tape = self._replacement = self.seen = None

    def call(self, embeddings, training=None):
        if not training:
            return embeddings
        if self._replacement is not None:
            return self._replacement
        if self._tape is not None:
            self._tape.watch(embeddings)
            self.seen = embeddings
        return embeddings

    def compute_output_shape(self, input_shape):
        return input_shape


# The training-only output that learns the teacher's score (pipeline.teacher).
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
    """Embedding -> (bidirectional) recurrent layer [+ mean character n-gram embedding]
    -> dropout -> spam probability.

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
    if config.adversarial_epsilon < 0:
        raise ValueError(f"adversarial_epsilon {config.adversarial_epsilon} is negative; use 0 "
                         "to train without adversarial steps")
    if config.rnn_type not in _RNN_LAYERS:
        raise ValueError(f"rnn_type {config.rnn_type!r} is not one of {sorted(_RNN_LAYERS)}")
    inputs = model_inputs(config)
    x = inputs["token_ids"] if config.char_gram_buckets else inputs
    if config.word_dropout > 0:
        x = WordDropout(config.word_dropout, seed=config.seed, name="word_dropout")(x)
    x = keras.layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True,
                               name="embedding")(x)
    if config.adversarial_epsilon > 0:
        x = AdversarialShift(name="adversarial_shift")(x)
    if config.embedding_dropout > 0:
        # the same channels dropped at every word of a message (keeps the padding mask)
        x = keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(x)
    if config.pooling not in ("last", "max"):
        raise ValueError(f"pooling {config.pooling!r} is not one of ['last', 'max']")
    recurrent = _RNN_LAYERS[config.rnn_type](
        config.rnn_units, return_sequences=config.pooling == "max", name=config.rnn_type)
    if config.bidirectional:
        recurrent = keras.layers.Bidirectional(recurrent, name=f"bi_{config.rnn_type}")
    x = recurrent(x)
    if config.pooling == "max":
        x = MaskedMaxOverTime(name="max_over_time")(x)
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


def _optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "adam":
        return keras.optimizers.Adam(config.learning_rate)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(config.learning_rate)
    raise ValueError(f"optimizer {config.optimizer!r} is not one of ['adam', 'rmsprop']")


def _history_key(key: str, metrics_output: str) -> str:
    """A metric's name in the history. With several outputs (the n-gram member, the
    teacher's head or an ensemble's members), Keras prefixes the quality metrics with the
    output that carries them, ``metrics_output`` ("val_network_auc", "val_served_auc");
    they keep their plain names ("val_auc"). "loss" is the weighted sum of the outputs' losses,
    beside each output's own ("network_loss", "member_loss", "served_loss": the output
    early stopping watches; an ensemble's members' as "member_0_network_loss" ...)."""
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

    With ``ensemble_size`` > 1, that many members, each with its own seed, train jointly:
    one fit, every step updating each member on its own losses (as if it trained alone),
    and early stopping watches the validation loss of their average, the output served.
    The returned model averages the members' probabilities (one Keras model, so the export
    and every caller stay the same).

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
    if config.ensemble_size <= 1:
        model = build_classifier(vocabulary_size, config, "spam_rnn", for_training=True)
        members = [model]
    else:
        members = [build_classifier(vocabulary_size,
                                    dataclasses.replace(config, seed=config.seed
                                                        * config.ensemble_size + member),
                                    f"member_{member}", for_training=True)
                   for member in range(config.ensemble_size)]
        model = _joint_model(members, config)
    history = _fit(model, train_ids, train_labels, validation_ids, validation_labels, config,
                   on_epoch, log_dir, teacher_scores)
    # what is served: each member without its training-only outputs, and their average
    served_layer = "members" if config.ngram_member else "spam_probability"
    members = [member if len(member.outputs) == 1 else
               keras.Model(member.inputs, member.get_layer(served_layer).output,
                           name=member.name) for member in members]
    if len(members) == 1:
        return members[0], history
    inputs = model_inputs(config)
    probability = keras.layers.Average(name="ensemble_mean")([m(inputs) for m in members])
    return keras.Model(inputs, probability, name="spam_rnn_ensemble"), history


def _loss_weights(config: ModelConfig) -> dict[str, float]:
    """The loss weight of each kind of output (an ensemble's ``member_0_network`` is a
    ``network``): the network and the n-gram member learn the labels on their own losses,
    the teacher's head its score; what is served (the n-gram member's sum, an ensemble's
    average) is only measured: no gradient."""
    return {"network": 1.0, "member": 1.0, "served": 0.0, TEACHER_OUTPUT: config.teacher_weight}


def _joint_model(members: list[keras.Model], config: ModelConfig) -> keras.Model:
    """The ensemble in training: every output of every member (``member_0_network`` ...)
    and ``served``, the average of the members' served outputs."""
    inputs = model_inputs(config)
    served_output = "served" if config.ngram_member else "network"
    outputs, served = {}, []
    for member in members:
        member_outputs = member(inputs)
        if not isinstance(member_outputs, dict):
            member_outputs = {"network": member_outputs}
        for output, tensor in member_outputs.items():
            name = f"{member.name}_{output}"
            outputs[name] = keras.layers.Identity(name=name)(tensor)
        served.append(outputs[f"{member.name}_{served_output}"])
    outputs["served"] = keras.layers.Average(name="served")(served)
    return keras.Model(inputs, outputs, name="spam_rnn_ensemble")


class _AdversarialTraining(keras.Model):
    """Fits ``model`` with adversarial training on its word embeddings (Miyato, Dai and
    Goodfellow, "Adversarial Training Methods for Semi-Supervised Text Classification",
    ICLR 2017): each step also learns from the batch with every message's embeddings
    moved by ``epsilon`` times their norm along the loss gradient, the direction that
    hurts most, so the network cannot lean on a few words' exact vectors. The two
    passes' losses are added; the history, the metrics and early stopping see the clean
    pass only. Training-only: it shares ``model``'s weights and is never saved or served.
    About twice the training time."""

    def __init__(self, model: keras.Model, epsilon: float, loss_weights: dict[str, float]):
        super().__init__(name=f"{model.name}_adversarial")
        self.network = model
        self.epsilon = epsilon
        self.loss_weights = loss_weights  # per output ({} for one output of weight 1)
        self.shifts = [layer for layer in _all_layers(model)
                       if isinstance(layer, AdversarialShift)]
        if not self.shifts:
            raise ValueError("adversarial training needs the model's AdversarialShift "
                             "layers: build it with adversarial_epsilon > 0")

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    def _loss(self, y, y_pred):
        # the compiled losses' weighted sum, computed here rather than by compute_loss(),
        # which would also add the moved pass to the per-output loss metrics
        def cross_entropy(target, probability):
            target = keras.ops.reshape(keras.ops.cast(target, probability.dtype), (-1, 1))
            return keras.ops.mean(keras.losses.binary_crossentropy(target, probability))
        if not isinstance(y_pred, dict):
            return cross_entropy(y, y_pred)
        return sum(weight * cross_entropy(y[output], y_pred[output])
                   for output, weight in self.loss_weights.items() if weight)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            with tf.GradientTape() as probe:
                for shift in self.shifts:
                    shift.probe(probe)
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            seen = [shift.seen for shift in self.shifts]
            for shift, embeddings, gradient in zip(self.shifts, seen, probe.gradient(loss, seen)):
                shift.replace(embeddings + self.epsilon * _step(tf.stop_gradient(embeddings),
                                                                tf.stop_gradient(gradient)))
            adversarial = self._loss(y, self(x, training=True))
            for shift in self.shifts:
                shift.reset()
            total = loss + adversarial
        gradients = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
        return self.compute_metrics(x, y, y_pred)


def _step(embeddings, gradient):
    """The gradient's direction, scaled to each message's embedding norm."""
    def norm(t):
        return tf.sqrt(tf.reduce_sum(tf.square(t), axis=[1, 2], keepdims=True))
    return norm(embeddings) * gradient / (norm(gradient) + 1e-12)


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _fit(model: keras.Model, train_ids, train_labels, validation_ids, validation_labels,
         config: ModelConfig, on_epoch: EpochCallback | None, log_dir: Path | None,
         teacher_scores: np.ndarray | None) -> list[dict]:
    """Compile and fit ``model`` (one network, or the joint model of an ensemble) with
    early stopping; returns the history, one row per epoch."""
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
    weights = {output: kinds[output.rsplit("_", 1)[-1]] for output in outputs}
    trainer = (_AdversarialTraining(model, config.adversarial_epsilon, weights)
               if config.adversarial_epsilon > 0 else model)
    if outputs:
        # the quality metrics are the network's, or an ensemble's average's
        metrics_output = "served" if config.ensemble_size > 1 else "network"
        trainer.compile(optimizer=_optimizer(config),
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
        trainer.compile(optimizer=_optimizer(config), loss="binary_crossentropy",
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
        fit = trainer.fit(train_data, validation_data=validation_data,
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
