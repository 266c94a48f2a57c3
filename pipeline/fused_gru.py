"""A faster inference graph for the default classifier, with the trained model's weights.

The default model is embedding -> unidirectional GRU (final state) -> dense sigmoid; its
dropout layers do nothing at inference. Keras runs the GRU as a generic loop that, at
every word, multiplies the word's embedding by the GRU's input kernel. That product
depends only on the word, so it is computed once per vocabulary entry here (a table of
``vocabulary x 3*units`` gate inputs) and each step is left with one recurrent product
and a dozen element-wise ops. The arithmetic is otherwise Keras' own (``reset_after``,
sigmoid gates, tanh candidate; padded steps keep the state exactly), and the tests hold
both to 1e-6 on the same ids. About half the network time of the Keras call on 2 cores;
any other architecture (LSTM, bidirectional, max pooling, ensembles) keeps the Keras call.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from pipeline.model import WordDropout

# Layers that are the identity at inference.
_INFERENCE_NOOPS = (keras.layers.InputLayer, keras.layers.Dropout,
                    keras.layers.SpatialDropout1D, WordDropout)


# The update gate input of the padding id: sigmoid() of it is exactly 1.0 in float32, so a
# padded step keeps the state unchanged (state * 1 + candidate * 0), with no mask ops.
_SATURATED = 1e4


class FusedGRUClassifier(tf.Module):
    """``ids [batch, time] int32 -> spam probability [batch]`` for a supported model."""

    def __init__(self, embedding, gru, dense):
        super().__init__(name="fused_gru_classifier")
        cell = gru.cell
        units = self.units = cell.units
        input_bias, recurrent_bias = cell.bias[0], cell.bias[1]
        gate_inputs = tf.matmul(embedding.embeddings, cell.kernel) + input_bias  # [vocab, 3u]
        # Update and reset gates add the recurrent bias outside the reset product: it joins
        # their per-word table. The padding id (0) saturates the update gate.
        update_reset = (gate_inputs[:, :2 * units] + recurrent_bias[:2 * units]).numpy()
        update_reset[0, :units] = _SATURATED
        self.update_reset_inputs = tf.Variable(update_reset, trainable=False,
                                               name="update_reset_inputs")   # [vocab, 2u]
        self.candidate_inputs = tf.Variable(gate_inputs[:, 2 * units:], trainable=False,
                                            name="candidate_inputs")         # [vocab, u]
        self.recurrent_kernel = tf.Variable(cell.recurrent_kernel, trainable=False,
                                            name="recurrent_kernel")         # [u, 3u]
        self.candidate_recurrent_bias = tf.Variable(
            recurrent_bias[2 * units:], trainable=False, name="candidate_recurrent_bias")
        self.output_kernel = tf.Variable(dense.kernel, trainable=False, name="output_kernel")
        self.output_bias = tf.Variable(dense.bias, trainable=False, name="output_bias")

    def __call__(self, ids: tf.Tensor) -> tf.Tensor:
        time_major = tf.transpose(ids)                                       # [time, batch]
        update_reset_inputs = tf.gather(self.update_reset_inputs, time_major)  # [t, b, 2u]
        candidate_inputs = tf.gather(self.candidate_inputs, time_major)        # [t, b, u]
        state = tf.zeros([tf.shape(ids)[0], self.units], self.candidate_inputs.dtype)

        def step(t, state):
            recurrent = tf.matmul(state, self.recurrent_kernel)
            update_reset, candidate_recurrent = tf.split(
                recurrent, [2 * self.units, self.units], axis=1)
            update, reset = tf.split(tf.sigmoid(update_reset_inputs[t] + update_reset), 2,
                                     axis=1)
            candidate = tf.tanh(candidate_inputs[t] + reset * (
                candidate_recurrent + self.candidate_recurrent_bias))
            return t + 1, update * state + (1.0 - update) * candidate

        _, state = tf.while_loop(lambda t, _: t < tf.shape(time_major)[0], step,
                                 (tf.constant(0), state))
        logits = tf.matmul(state, self.output_kernel) + self.output_bias
        return tf.reshape(tf.sigmoid(logits), [-1])


def fuse(model: keras.Model) -> FusedGRUClassifier | None:
    """The fused graph of ``model`` (built by :func:`pipeline.model.build_classifier`, a
    chain of layers), or None when its architecture is not the supported one."""
    layers = [layer for layer in model.layers if not isinstance(layer, _INFERENCE_NOOPS)]
    if [type(layer) for layer in layers] != [keras.layers.Embedding, keras.layers.GRU,
                                             keras.layers.Dense]:
        return None
    embedding, gru, dense = layers
    cell = gru.cell
    supported = (
        embedding.mask_zero and cell.use_bias and cell.reset_after
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and not (gru.return_sequences or gru.go_backwards or gru.stateful)
        and dense.units == 1 and dense.use_bias
        and dense.activation is keras.activations.sigmoid)
    return FusedGRUClassifier(embedding, gru, dense) if supported else None

