"""A faster inference graph for the default classifier, with the trained model's weights.

The default model is embedding -> unidirectional GRU (final state) -> dense sigmoid; its
dropout layers do nothing at inference. Keras runs the GRU as a generic loop that, at
every word, multiplies the word's embedding by the GRU's input kernel. That product
depends only on the word, so it is computed once per vocabulary entry here (a table of
``vocabulary x units`` gate inputs per gate) and each step is left with the recurrent
products and a dozen element-wise ops. Each gate has its own table and recurrent kernel,
so that no step splits a tensor along the units (a copy: a quarter of the loop's time).
The arithmetic is otherwise Keras' own (``reset_after``, sigmoid gates, tanh candidate;
padded steps keep the state exactly), and the tests hold both to 1e-6 on the same ids.
About half the network time of the Keras call on 2 cores; a model this module does not
recognise keeps the Keras call.

With character n-grams beside the words, the classifier adds the mean of the n-grams'
embeddings times their share of the output kernel: that product, too, depends only on the
n-gram, so it becomes one number per hash bucket; and since the n-grams are cut per word,
each vocabulary word's sum and count of n-gram logits are computed once here. At serving
time only the words outside the vocabulary are cut into n-grams.

The n-gram member (``ngram_member``) is linear too: one logit per character n-gram
bucket, summed per vocabulary word like the classifier's, and one per word-gram bucket;
its log-odds, times the member's weight, join the classifier's.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

from pipeline.data import text
from pipeline.model.layers import AddLogOdds, MeanBagEmbedding, WordDropout

# The largest log-odds AddLogOdds reads back from a probability it has clipped.
_MAX_LOG_ODDS = math.log((1.0 - AddLogOdds.EPSILON) / AddLogOdds.EPSILON)

# Layers that are the identity at inference.
_INFERENCE_NOOPS = (keras.layers.InputLayer, keras.layers.Dropout,
                    keras.layers.SpatialDropout1D, WordDropout)


# The update gate input of the padding id: sigmoid() of it is exactly 1.0 in float32, so a
# padded step keeps the state unchanged (state * 1 + candidate * 0), with no mask ops.
_SATURATED = 1e4
# The recurrent loop runs in this many stages, each on fewer rows (FusedGRUClassifier).
_STAGES = 4
_STAGED_FROM_ROWS = 256


class FusedGRUClassifier(tf.Module):
    """``ids [batch, time] int32 -> spam probability [batch]`` for a supported model."""

    def __init__(self, embedding, gru, dense, char_grams=None, vocabulary=(), member=None):
        super().__init__(name="fused_gru_classifier")
        cell = gru.cell
        units = self.units = cell.units
        input_bias, recurrent_bias = cell.bias[0], cell.bias[1]
        gate_inputs = tf.matmul(embedding.embeddings, cell.kernel) + input_bias  # [vocab, 3u]
        # One table and one recurrent kernel per gate, so that no step splits a tensor
        # (a split along the units copies). Update and reset gates add the recurrent bias
        # outside the reset product: it joins their per-word tables. The padding id (0)
        # saturates the update gate.
        update = (gate_inputs[:, :units] + recurrent_bias[:units]).numpy()
        update[0] = _SATURATED
        self.update_inputs = tf.Variable(update, trainable=False, name="update_inputs")
        self.reset_inputs = tf.Variable(
            gate_inputs[:, units:2 * units] + recurrent_bias[units:2 * units],
            trainable=False, name="reset_inputs")                            # [vocab, u]
        self.candidate_inputs = tf.Variable(gate_inputs[:, 2 * units:], trainable=False,
                                            name="candidate_inputs")         # [vocab, u]
        recurrent_kernel = tf.convert_to_tensor(cell.recurrent_kernel)      # [u, 3u]
        self.update_kernel, self.reset_kernel, self.candidate_kernel = (
            tf.Variable(recurrent_kernel[:, gate * units:(gate + 1) * units], trainable=False,
                        name=f"{name}_recurrent_kernel")
            for gate, name in enumerate(("update", "reset", "candidate")))  # [u, u] each
        self.candidate_recurrent_bias = tf.Variable(
            recurrent_bias[2 * units:], trainable=False, name="candidate_recurrent_bias")
        kernel = tf.convert_to_tensor(dense.kernel)
        self.output_kernel = tf.Variable(kernel[:units], trainable=False, name="output_kernel")
        self.output_bias = tf.Variable(dense.bias, trainable=False, name="output_bias")
        self.char_gram_logits = None
        self.member_weight = None
        if char_grams is not None:
            # one logit per n-gram bucket (embedding x kernel share), a column for the
            # network and, with the n-gram member, a column for the member's
            columns = [tf.matmul(char_grams.embeddings * char_grams.scale, kernel[units:])]
            if member is not None:
                char_table, word_table, member_dense, weight, self.word_grams = member
                member_kernel = tf.reshape(tf.convert_to_tensor(member_dense.kernel), [-1])
                columns.append(char_table.embeddings * (char_table.scale * member_kernel[0]))
                self._fold_member_word_grams(word_table, member_kernel, member_dense.bias)
                self.member_weight = float(weight)
            gram_logits = tf.concat(columns, 1)
            gram_logits = tf.tensor_scatter_nd_update(  # bucket 0: no n-gram
                gram_logits, [[0]], tf.zeros([1, len(columns)], gram_logits.dtype))
            self.char_gram_logits = tf.Variable(gram_logits, trainable=False,
                                                name="char_gram_logits")  # [buckets, k]
            # per word id: the sums and count of its n-grams' logits (0 for padding and
            # for unknown words, whose n-grams are cut when they are met)
            total, count = _gram_sums(gram_logits, tf.constant(list(vocabulary), tf.string),
                                      char_grams.buckets)
            self.word_gram_sums = tf.Variable(
                tf.concat([tf.zeros([text.RESERVED_TOKENS, len(columns)]), total], 0),
                trainable=False, name="word_gram_sums")                    # [vocab, k]
            self.word_gram_counts = tf.Variable(
                tf.concat([tf.zeros([text.RESERVED_TOKENS]), count], 0),
                trainable=False, name="word_gram_counts")                  # [vocab]
            self.buckets = char_grams.buckets

    def _fold_member_word_grams(self, word_table, member_kernel, member_bias) -> None:
        """The member's logit per word-gram bucket (0 for the padding bucket), and its bias."""
        word_logits = tf.zeros([1])
        if word_table is not None:
            word_logits = tf.reshape(word_table.embeddings, [-1]) * (word_table.scale
                                                                     * member_kernel[1])
            word_logits = tf.tensor_scatter_nd_update(word_logits, [[0]], [0.0])
        self.member_word_gram_logits = tf.Variable(word_logits, trainable=False,
                                                   name="member_word_gram_logits")
        self.member_bias = tf.Variable(tf.reshape(member_bias, []), trainable=False,
                                       name="member_bias")

    def _final_states(self, ids: tf.Tensor) -> tf.Tensor:
        """The GRU's final state ``[batch, units]`` for ``ids`` ``[batch, time]``.

        A batch of :data:`_STAGED_FROM_ROWS` rows or more runs longest first, in
        :data:`_STAGES` stages: each stage runs the steps up to the longest message of
        the rows that leave after it, and then a quarter of the batch, its shortest rows
        still running, leaves (their states are final: a padded step keeps the state).
        BatchScore's batches of 4,096, cut by character length, are about 30% padding;
        the stages leave about 10%, and each stage gathers the gate inputs of its own
        steps and rows only, so no step slices or joins tensors. A smaller batch (a
        request to the server) runs in one stage, which saves it the sorting."""
        batch = tf.shape(ids)[0]
        return tf.cond(batch < _STAGED_FROM_ROWS,
                       lambda: self._run_steps(tf.transpose(ids), self._zero_state(batch)),
                       lambda: self._staged_final_states(ids))

    def _zero_state(self, rows) -> tf.Tensor:
        return tf.zeros([rows, self.units], self.candidate_inputs.dtype)

    def _staged_final_states(self, ids: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(ids)[0]
        steps = tf.range(1, tf.shape(ids)[1] + 1)
        lengths = tf.reduce_max(tf.where(ids > 0, steps, 0), axis=1)  # to the last word
        order = tf.argsort(lengths, direction="DESCENDING", stable=True)
        time_major = tf.transpose(tf.gather(ids, order))                    # [time, batch]
        # descending, then a 0 for when no row stays (the last stage, or fewer rows than
        # stages): longest[k] is the most steps any row from the k-th on needs
        longest = tf.concat([tf.gather(lengths, order), [0]], 0)           # [batch + 1]
        state = self._zero_state(batch)
        finished, done = [], 0
        for stage in range(_STAGES):
            # rows still running after this stage; it ends where the longest leaving one does
            staying = (batch * (_STAGES - stage - 1) + _STAGES - 1) // _STAGES
            end = longest[staying]
            state = self._run_steps(time_major[done:end, :tf.shape(state)[0]], state)
            finished.append(state[staying:])
            state, done = state[:staying], end
        sorted_states = tf.concat(finished[::-1], 0)
        return tf.gather(sorted_states, tf.math.invert_permutation(order))

    def _run_steps(self, time_major: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
        """The state after the steps of ``time_major`` ``[time, rows]`` from ``state``."""
        update_inputs = tf.gather(self.update_inputs, time_major)             # [t, b, u]
        reset_inputs = tf.gather(self.reset_inputs, time_major)
        candidate_inputs = tf.gather(self.candidate_inputs, time_major)

        def step(t, state):
            update = tf.sigmoid(update_inputs[t] + tf.matmul(state, self.update_kernel))
            reset = tf.sigmoid(reset_inputs[t] + tf.matmul(state, self.reset_kernel))
            candidate = tf.tanh(candidate_inputs[t] + reset * (
                tf.matmul(state, self.candidate_kernel) + self.candidate_recurrent_bias))
            return t + 1, update * state + (1.0 - update) * candidate

        _, state = tf.while_loop(lambda t, _: t < tf.shape(time_major)[0], step,
                                 (tf.constant(0), state))
        return state

    def __call__(self, ids: tf.Tensor, tokens: tf.RaggedTensor | None = None,
                 token_ids: tf.RaggedTensor | None = None) -> tf.Tensor:
        """``ids`` as the Keras model takes them; with character n-grams, also every token
        of each message (``[batch, (tokens)]`` strings, not truncated) and its id."""
        state = self._final_states(ids)
        logits = tf.reshape(tf.matmul(state, self.output_kernel) + self.output_bias, [-1])
        if self.char_gram_logits is not None:  # the mean n-gram logits of each message
            flat_ids = token_ids.flat_values
            total = tf.gather(self.word_gram_sums, flat_ids)                  # [n, k]
            count = tf.gather(self.word_gram_counts, flat_ids)                # [n]
            unknown = tf.where(tf.equal(flat_ids, text.OOV_ID))               # [u, 1]
            unknown_total, unknown_count = _gram_sums(
                self.char_gram_logits, tf.gather_nd(tokens.flat_values, unknown), self.buckets)
            total = tf.tensor_scatter_nd_add(total, unknown, unknown_total)
            count = tf.tensor_scatter_nd_add(count, unknown, unknown_count)
            messages, rows = token_ids.nrows(), token_ids.value_rowids()
            total = tf.math.unsorted_segment_sum(total, rows, messages)       # [batch, k]
            count = tf.math.unsorted_segment_sum(count, rows, messages)       # [batch]
            means = total / tf.maximum(count, 1.0)[:, None]
            logits += means[:, 0]
            if self.member_weight is not None:
                member = self.member_bias + means[:, 1]
                if self.word_grams:  # the mean logit of the message's word grams
                    grams, owners = text.hashed_word_grams(tokens, self.buckets,
                                                            self.word_grams)
                    grams_total = tf.math.unsorted_segment_sum(
                        tf.gather(self.member_word_gram_logits, grams), owners, messages)
                    grams_count = tf.math.unsorted_segment_sum(
                        tf.ones(tf.shape(grams), grams_total.dtype), owners, messages)
                    member += grams_total / tf.maximum(grams_count, 1.0)
                bound = _MAX_LOG_ODDS
                logits = tf.clip_by_value(logits, -bound, bound) + self.member_weight * \
                    tf.clip_by_value(member, -bound, bound)
        return tf.sigmoid(logits)


def _gram_sums(gram_logits: tf.Tensor, words: tf.Tensor, buckets: int
               ) -> tuple[tf.Tensor, tf.Tensor]:
    """The sums (``[n, k]``, a column per column of ``gram_logits``, ``[buckets, k]``) and
    the count (``[n]``) of the n-gram logits of each of ``words`` (``[n]``)."""
    ids, owner = text.token_char_grams(words, buckets)
    n = tf.shape(words, out_type=tf.int64)[0]
    total = tf.math.unsorted_segment_sum(
        tf.reduce_sum(tf.gather(gram_logits, ids), 1), owner, n)            # [n, k]
    count = tf.math.unsorted_segment_sum(
        tf.reduce_sum(tf.cast(ids > 0, gram_logits.dtype), 1), owner, n)
    return total, count


def _input_layers(model: keras.Model, layer) -> list:
    """The layers whose outputs ``layer`` of ``model`` takes as its positional inputs, in
    order, looking through the layers that are identities at inference (dropout...).

    Read from the model's functional config, whose ``inbound_nodes`` name each input's
    producing layer (``keras_history``): Keras's serialization format, public, unlike the
    ``_keras_history`` of a live tensor."""
    config = {entry["name"]: entry for entry in model.get_config()["layers"]}

    def producers(name: str) -> list[str]:
        names: list[str] = []

        def collect(value) -> None:
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                names.append(value["config"]["keras_history"][0])
            elif isinstance(value, (list, tuple)):
                for item in value:
                    collect(item)

        for node in config[name].get("inbound_nodes", [])[:1]:
            collect(node["args"])
        return names

    found = []
    for name in producers(layer.name):
        producer = model.get_layer(name)
        while (isinstance(producer, _INFERENCE_NOOPS)
               and not isinstance(producer, keras.layers.InputLayer)):
            [name] = producers(name)
            producer = model.get_layer(name)
        found.append(producer)
    return found


def fuse(model: keras.Model, vocabulary: list[str] = (),
         word_grams: int = 0) -> FusedGRUClassifier | None:
    """The fused graph of ``model`` (built by :func:`pipeline.model.build_classifier`, on
    ``vocabulary``, with ``word_grams`` as trained), or None when its architecture is not
    the one this module knows."""
    layers = [layer for layer in model.layers if not isinstance(layer, _INFERENCE_NOOPS)]
    member = None
    by_name = {layer.name: layer for layer in layers}
    if isinstance(by_name.get("members"), AddLogOdds):  # the n-gram member (ngram_member)
        names = ["members", "member_char_grams", "member_word_grams", "member_bags",
                 "member_probability"]
        char_table, dense_ = by_name.get("member_char_grams"), by_name.get("member_probability")
        word_table = by_name.get("member_word_grams")
        if char_table is None or dense_ is None:
            return None
        if word_table is not None and not word_grams:
            return None  # the word-gram order is not in the model: pass word_grams
        member = (char_table, word_table, dense_, by_name["members"].weight,
                  word_grams if word_table is not None else 0)
        layers = [layer for layer in layers if layer.name not in names]
    kinds = sorted(type(layer).__name__ for layer in layers)
    by_kind = {type(layer): layer for layer in layers}
    char_grams = by_kind.get(MeanBagEmbedding)
    if char_grams is not None:
        # words and n-grams meet in Concatenate([recurrent state, n-gram mean])
        merge = by_kind.get(keras.layers.Concatenate)
        if (kinds != ["Concatenate", "Dense", "Embedding", "GRU", "MeanBagEmbedding"]
                or _input_layers(model, merge) != [by_kind[keras.layers.GRU], char_grams]):
            return None
    elif kinds != ["Dense", "Embedding", "GRU"]:
        return None
    embedding, gru, dense = (by_kind[keras.layers.Embedding], by_kind[keras.layers.GRU],
                             by_kind[keras.layers.Dense])
    words = embedding.input_dim - text.RESERVED_TOKENS
    if char_grams is not None and len(vocabulary) != words:
        raise ValueError(f"the model was trained on {words} words and the vocabulary given "
                         f"has {len(vocabulary)}: pass the model's own vocabulary")
    cell = gru.cell
    supported = (
        embedding.mask_zero and cell.use_bias and cell.reset_after
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and not (gru.return_sequences or gru.go_backwards or gru.stateful)
        and dense.units == 1 and dense.use_bias
        and dense.activation is keras.activations.sigmoid)
    if member is not None and char_grams is None:
        return None
    return (FusedGRUClassifier(embedding, gru, dense, char_grams, vocabulary, member)
            if supported else None)
