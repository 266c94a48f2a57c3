"""Text standardization shared by vocabulary building, training and the exported model.

There is one implementation, written with TensorFlow string ops, so the exact same
graph runs when the vocabulary is counted, when training ids are made and inside the
SavedModel that TF Serving runs: no train/serve skew and no tokenizer on the client.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np
import tensorflow as tf

from pipeline import token_rules as rules

# Token ids: 0 pads a sequence, 1 stands for any word outside the vocabulary.
PAD_ID = 0
OOV_ID = 1
RESERVED_TOKENS = 2


def standardize(texts: tf.Tensor) -> tf.Tensor:
    """Lowercase and normalise a batch of UTF-8 messages by ``pipeline.token_rules``;
    returns space-separated tokens."""
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, rules.URL, f" {rules.URL_TOKEN} ")
    for digits, token in rules.NUMBER_SHAPES:
        texts = tf.strings.regex_replace(texts, digits, f" {token} ")
    texts = tf.strings.regex_replace(texts, rules.KEPT_PUNCTUATION, r" \1 ")
    texts = tf.strings.regex_replace(texts, rules.OTHER_SYMBOLS, " ")
    return texts


def tokenize(texts: tf.Tensor) -> tf.RaggedTensor:
    """Standardize a ``[batch]`` string tensor and split it into a ragged batch of tokens."""
    return tf.strings.split(standardize(texts))


def count_tokens(texts: Iterable[str], batch_size: int = 4096) -> Counter:
    """Count the tokens of ``texts`` exactly as the exported model will see them."""
    counts: Counter = Counter()
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        tokens = tokenize(tf.constant(texts[start : start + batch_size], tf.string))
        counts.update(token.decode("utf-8") for token in tokens.flat_values.numpy())
    return counts


def encode(texts: tf.Tensor, vocabulary: list[str], max_length: int) -> tf.Tensor:
    """Map a batch of raw messages to ``[batch, max_length]`` int32 ids (0-padded, truncated)."""
    lookup = make_lookup(vocabulary)
    return ids_from_tokens(tokenize(texts), lookup, max_length)


def make_lookup(vocabulary: list[str]) -> tf.lookup.StaticHashTable:
    """A static token -> id table: ids start after the pad and out-of-vocabulary ids."""
    keys = tf.constant(vocabulary, tf.string)
    values = tf.range(RESERVED_TOKENS, RESERVED_TOKENS + len(vocabulary), dtype=tf.int64)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, values), default_value=OOV_ID
    )


def ids_from_tokens(tokens: tf.RaggedTensor, lookup, max_length: int) -> tf.Tensor:
    """Look tokens up, truncate to ``max_length`` and pad to the longest row in the batch.

    Padding only to the batch's longest message (at least one step) keeps a batch of
    short messages cheap; padded steps are masked, so the result does not depend on it.
    """
    ids = tf.ragged.map_flat_values(lookup.lookup, tokens)[:, :max_length]
    dense = tf.cast(ids.to_tensor(default_value=PAD_ID), tf.int32)
    missing = tf.maximum(1 - tf.shape(dense)[1], 0)
    return tf.pad(dense, [[0, 0], [0, missing]], constant_values=PAD_ID)


def encode_numpy(texts: list[str], vocabulary: list[str], max_length: int) -> np.ndarray:
    """:func:`encode` for training data held in Python lists, padded to ``max_length``."""
    ids = encode(tf.constant(texts, tf.string), vocabulary, max_length).numpy()
    return np.pad(ids, [(0, 0), (0, max_length - ids.shape[1])], constant_values=PAD_ID)
