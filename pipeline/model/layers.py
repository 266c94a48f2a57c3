"""The classifier's own Keras layers, registered for safe loading (``spam_pipeline>...``:
the registered names do not depend on this module's path, so models saved before the
package moved still load)."""
from __future__ import annotations

import keras

_OOV_ID = 1  # pipeline.data.text.OOV_ID; not imported, to keep Keras layers free of text handling


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
