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

from pipeline.data import token_rules as rules

# Token ids: 0 pads a sequence, 1 stands for any word outside the vocabulary.
PAD_ID = 0
OOV_ID = 1
RESERVED_TOKENS = 2


def standardize(texts: tf.Tensor) -> tf.Tensor:
    """Lowercase and normalise a batch of UTF-8 messages by ``pipeline.data.token_rules``,
    message by message; returns space-separated tokens. :func:`tokenize` gives the same
    tokens, faster."""
    return _punctuation(_links_and_numbers(texts), rules.OTHER_SYMBOLS)


def _links_and_numbers(texts: tf.Tensor) -> tf.Tensor:
    texts = tf.strings.regex_replace(texts, rules.NUL_BYTE, " ")
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, rules.POUND_SIGN_GARBLES, "£")
    texts = tf.strings.regex_replace(texts, rules.URL, f" {rules.URL_TOKEN} ")
    for digits, token in rules.NUMBER_SHAPES:
        texts = tf.strings.regex_replace(texts, digits, f" {token} ")
    return texts


def _punctuation(texts: tf.Tensor, other_symbols: str) -> tf.Tensor:
    texts = tf.strings.regex_replace(texts, rules.KEPT_PUNCTUATION, r" \1 ")
    return tf.strings.regex_replace(texts, other_symbols, " ")


# tokenize() runs each rule once over the whole batch: the messages joined into one
# string with a separator between them, then cut apart. A call per message costs about
# a microsecond whatever the message's length, and the rules are nine calls. The
# separator is a mark with two spaces on each side: no rule matches across two spaces
# (a link's ``\s?`` takes at most one) and the mark is kept (the other symbols' class
# leaves it out here). A batch with a message that holds the mark is standardized
# message by message; so is, as a guard, a batch whose standardized string does not cut
# into one part per message (a NUL byte did, where TensorFlow's lowercasing stops, before
# the rules turned NUL into a space).
_MARK = "\x1e"  # the ASCII record separator
_SEPARATOR = f"  {_MARK}  "
assert rules.OTHER_SYMBOLS.startswith("[^") and rules.OTHER_SYMBOLS.endswith("]")
_OTHER_SYMBOLS_BUT_MARK = rules.OTHER_SYMBOLS[:-1] + _MARK + "]"


def tokenize(texts: tf.Tensor) -> tf.RaggedTensor:
    """Standardize a ``[batch]`` string tensor and split it into a ragged batch of tokens:
    ``tf.strings.split(standardize(texts))``, computed over the joined batch."""
    texts = tf.convert_to_tensor(texts, tf.string)
    messages = tf.size(texts)
    joined = tf.reshape(tf.strings.reduce_join(texts, separator=_SEPARATOR), [1])

    def cut(joined):
        return tf.strings.split(joined, _MARK).flat_values

    standardized = cut(_punctuation(_links_and_numbers(joined), _OTHER_SYMBOLS_BUT_MARK))
    whole_batch = tf.logical_and(tf.equal(tf.size(cut(joined)), messages),  # no mark inside
                                 tf.equal(tf.size(standardized), messages))  # none lost
    standardized = tf.cond(whole_batch, lambda: standardized, lambda: standardize(texts))
    return tf.strings.split(standardized)


def count_tokens(texts: Iterable[str], batch_size: int = 4096) -> Counter:
    """Count the tokens of ``texts`` exactly as the exported model will see them."""
    counts: Counter = Counter()
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        tokens = tokenize(tf.constant(texts[start : start + batch_size], tf.string))
        counts.update(token.decode("utf-8") for token in tokens.flat_values.numpy())
    return counts


def make_lookup(vocabulary: list[str]) -> tf.lookup.StaticHashTable:
    """A static token -> id table: ids start after the pad and out-of-vocabulary ids."""
    keys = tf.constant(vocabulary, tf.string)
    values = tf.range(RESERVED_TOKENS, RESERVED_TOKENS + len(vocabulary), dtype=tf.int64)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, values), default_value=OOV_ID
    )


def ids_from_tokens(tokens: tf.RaggedTensor, lookup, max_length: int) -> tf.Tensor:
    """Look tokens up, truncate to ``max_length`` and pad to the longest row in the batch."""
    return padded_ids(tf.ragged.map_flat_values(lookup.lookup, tokens), max_length)


def padded_ids(ids: tf.RaggedTensor, max_length: int) -> tf.Tensor:
    """Ragged token ids truncated to ``max_length`` and padded to the longest row.

    Padding only to the batch's longest message (at least one step) keeps a batch of
    short messages cheap; padded steps are masked, so the result does not depend on it.
    """
    dense = tf.cast(ids[:, :max_length].to_tensor(default_value=PAD_ID), tf.int32)
    missing = tf.maximum(1 - tf.shape(dense)[1], 0)
    return tf.pad(dense, [[0, 0], [0, missing]], constant_values=PAD_ID)


def token_char_grams(tokens: tf.Tensor, buckets: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Hashed character n-grams (``pipeline.data.token_rules``) of a flat ``[n]`` batch of
    tokens, each with a space at both ends (as scikit-learn's ``char_wb``).

    Returns ids ``[positions, widths]`` int32 in ``1 .. buckets - 1`` (0 where no n-gram of
    that width starts) and the token each position belongs to (``[positions]`` int64).
    Plain int32 arithmetic on code points, with no overflow.
    """
    cut = tf.strings.substr(tokens, 0, rules.CHAR_GRAM_MAX_CHARS, unit="UTF8_CHAR")
    codes = tf.strings.unicode_decode(" " + cut + " ", "UTF-8")
    flat, owner = codes.flat_values, codes.value_rowids()
    multiplier, state_mask = rules.CHAR_GRAM_HASH
    widest = max(rules.CHAR_GRAM_WIDTHS)
    n = tf.size(flat)
    padded_codes = tf.concat([flat, tf.zeros([widest], tf.int32)], 0)
    padded_owner = tf.concat([owner, tf.fill([widest], tf.constant(-1, tf.int64))], 0)
    columns = []
    for width in rules.CHAR_GRAM_WIDTHS:
        h = tf.fill([n], tf.constant(width, tf.int32))
        for offset in range(width):
            code = padded_codes[offset:offset + n]
            h = tf.bitwise.bitwise_and(h, state_mask) * multiplier + code
        ends_in_token = tf.equal(padded_owner[width - 1:width - 1 + n], owner)
        columns.append(tf.where(ends_in_token, tf.math.floormod(h, buckets - 1) + 1, 0))
    return tf.stack(columns, axis=1), owner


def char_gram_ids(tokens: tf.RaggedTensor, buckets: int) -> tf.RaggedTensor:
    """The character n-grams of every token of each message of a ragged ``[batch,
    (tokens)]`` batch: ``[batch, (n-grams)]``, as the Keras model takes them (0-padded to
    a dense batch)."""
    ids, owner = token_char_grams(tokens.flat_values, buckets)
    message = tf.gather(tokens.value_rowids(), owner)
    present = ids > 0
    return tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(ids, present),
        tf.boolean_mask(tf.tile(message[:, None], [1, ids.shape[1]]), present),
        nrows=tokens.nrows())


def hashed_word_grams(tokens: tf.RaggedTensor, buckets: int, order: int = 2
                      ) -> tuple[tf.Tensor, tf.Tensor]:
    """Each message's tokens (``order`` 1) or tokens and pairs of adjacent tokens (2),
    hashed into ``1 .. buckets - 1`` (``pipeline.data.token_rules.WORD_GRAM_HASH``), flat:
    ids ``[grams]`` int32 and the message each belongs to (``[grams]`` int64). Each
    token's string is hashed once; a pair's bucket is integer arithmetic on its two
    tokens' hashes, so no strings are joined."""
    hash_range, multiplier = rules.WORD_GRAM_HASH
    hashes = tf.strings.to_hash_bucket_fast(tokens.flat_values, hash_range)  # < 2^31
    messages = tokens.value_rowids()
    values, owners = [hashes], [messages]
    if order >= 2:
        same_message = tf.equal(messages[:-1], messages[1:])
        pairs = hashes[:-1] * multiplier + hashes[1:] + 1  # < 2^52: no overflow
        values.append(tf.boolean_mask(pairs, same_message))
        owners.append(tf.boolean_mask(messages[:-1], same_message))
    ids = tf.math.floormod(tf.concat(values, 0), buckets - 1) + 1
    return tf.cast(ids, tf.int32), tf.concat(owners, 0)


def word_gram_ids(tokens: tf.RaggedTensor, buckets: int, order: int = 2) -> tf.RaggedTensor:
    """:func:`hashed_word_grams` as a ragged ``[batch, (grams)]`` batch, as the Keras model
    takes them (0-padded to a dense batch)."""
    ids, owners = hashed_word_grams(tokens, buckets, order)
    by_message = tf.argsort(owners, stable=True)
    return tf.RaggedTensor.from_value_rowids(tf.gather(ids, by_message),
                                             tf.gather(owners, by_message),
                                             nrows=tokens.nrows())


def gram_inputs(tokens: tf.RaggedTensor, char_gram_buckets: int,
                word_grams: int = 0) -> dict[str, tf.Tensor]:
    """The model's n-gram inputs for a ragged batch of tokens: ``char_gram_ids`` and, with
    ``word_grams``, ``word_gram_ids``, each ``[batch, grams]`` int32, 0-padded to the
    message with the most. Used for training data and inside the export alike."""
    inputs = {"char_gram_ids": tf.cast(char_gram_ids(tokens, char_gram_buckets)
                                       .to_tensor(default_value=PAD_ID), tf.int32)}
    if word_grams:
        inputs["word_gram_ids"] = word_gram_ids(tokens, char_gram_buckets, word_grams
                                                ).to_tensor(default_value=PAD_ID)
    return inputs


def encode_inputs(texts: list[str], vocabulary: list[str], max_length: int,
                  char_gram_buckets: int = 0, word_grams: int = 0) -> dict[str, np.ndarray]:
    """The model's inputs for messages held in Python lists: ``token_ids``
    ``[n, max_length]`` and, with ``char_gram_buckets``, ``char_gram_ids`` ``[n, grams]``
    (0-padded), and with ``word_grams`` too, ``word_gram_ids`` (:func:`word_gram_ids`),
    as :func:`pipeline.model.build_classifier` takes them."""
    tokens = tokenize(tf.constant(texts, tf.string))  # once, for words and n-grams
    ids = ids_from_tokens(tokens, make_lookup(vocabulary), max_length).numpy()
    inputs = {"token_ids": np.pad(ids, [(0, 0), (0, max_length - ids.shape[1])],
                                  constant_values=PAD_ID)}
    if char_gram_buckets:
        inputs.update({name: grams.numpy() for name, grams
                       in gram_inputs(tokens, char_gram_buckets, word_grams).items()})
    return inputs


def token_statistics(texts: list[str], lookup, batch_size: int = 4096) -> dict[str, int]:
    """How many word tokens ``texts`` hold, how many of those ``lookup`` (see
    :func:`make_lookup`) does not know, and how many messages hold a link: what drift
    monitoring compares between a day's messages and the training data.

    A word token is a token with a letter or a digit in it (punctuation is not a word)."""
    counts = {"messages": 0, "word_tokens": 0, "oov_tokens": 0, "url_messages": 0}
    for start in range(0, len(texts), batch_size):
        tokens = tokenize(tf.constant(texts[start:start + batch_size], tf.string))
        words = tf.strings.regex_full_match(tokens.flat_values, r".*[\pL\pN].*")
        unknown = tf.logical_and(words, tf.equal(lookup.lookup(tokens.flat_values), OOV_ID))
        links = tf.reduce_any(tf.equal(tokens, rules.URL_TOKEN), axis=1)
        counts["messages"] += int(tokens.nrows())
        counts["word_tokens"] += int(tf.math.count_nonzero(words))
        counts["oov_tokens"] += int(tf.math.count_nonzero(unknown))
        counts["url_messages"] += int(tf.math.count_nonzero(links))
    return counts
