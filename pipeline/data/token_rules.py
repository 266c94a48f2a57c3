"""The rules that turn a message into tokens, kept apart from their TensorFlow
implementation (``pipeline.data.text``) so that checking a target's fingerprint does not start
TensorFlow. A vocabulary, and every model trained on it, belongs to the rules it was
counted with: ``fingerprint()`` is part of BuildVocab's target name.
"""
from __future__ import annotations

import hashlib
import json

# A NUL byte becomes a space before anything else: TensorFlow's UTF-8 lowercasing stops
# at the first one (tf.strings.lower(b"AB\0CD") is b"ab"), which lost the rest of the
# message, and any spam cue in it, to the model.
NUL_BYTE = r"\x00"
URL_TOKEN = "xxurl"
# Links in every shape SMS spam writes them: with a scheme (also "http:// x" and
# "https//x"), www., a common top-level domain, or a short-link domain followed by a path.
URL = (r"(https?:?//\s?\S*|www\.\S+"
       r"|[a-z0-9][\w-]*(?:\.[\w-]+)*\.(?:com|net|org|info|biz|co\.uk|uk)\b(?:/\S*)?"
       r"|[a-z0-9][\w-]*\.(?:ly|gl|do|me|to|co|in|io|cc|tk|ru|us)/\S*)")
# Phone numbers and short codes are strong spam cues; their exact digits are not, their
# shape is: a token per length class, longest first (09061701461, 87121, 2005). Chosen on
# validation loss: median of 3 seeds 0.0362 with one token for 4+ digits, 0.0270 with these.
NUMBER_SHAPES = ((r"\d{10,}", "xxphone"), (r"\d{5,9}", "xxcode"), (r"\d{4}", "xxnum"))
# The pound sign as messages garbled by a wrong character set show it (UTF-8 read as
# Latin-1 or Windows-1252, or lost as U+FFFD): the same cue as "£".
POUND_SIGN_GARBLES = r"(å£|â£|ã‚£|\x{fffd}|ï¿½)"
# Punctuation that carries meaning in SMS spam is kept as tokens of its own.
KEPT_PUNCTUATION = r"([!?£$€&%+*])"
OTHER_SYMBOLS = r"[^\p{L}\p{N}\s!?£$€&%+*]"

# Character n-grams of each token, with a space at both ends (" win " -> " w", "wi",
# "in", "n ", " wi", ...), as the TF-IDF character features of the SVM anchor are
# (scikit-learn's char_wb): a word the vocabulary never saw still shares its pieces with
# words it did ("winnings" and "win"). Only the first CHAR_GRAM_MAX_CHARS characters of a
# token are cut into n-grams. Per token, so that the export computes them once per
# vocabulary word and, at serving time, only for words outside the vocabulary.
CHAR_GRAM_WIDTHS = (2, 3, 4, 5)
CHAR_GRAM_MAX_CHARS = 24
# The hash of an n-gram: h = width, then h = (h & 0xFFFFF) * 1021 + code point for each
# character (below 2^31: no overflow), then bucket = 1 + h mod (buckets - 1); bucket 0 is
# padding. Integer arithmetic on code points is several times faster than string n-grams.
CHAR_GRAM_HASH = (1021, 0xFFFFF)
# The n-gram member's word grams (pipeline.text.word_gram_ids): each token hashed with
# TensorFlow's Fingerprint64 into [0, 2^31 - 1); a word's bucket is 1 + h mod (buckets - 1),
# a pair's 1 + (h1 * 1000003 + h2 + 1) mod (buckets - 1).
WORD_GRAM_HASH = (2**31 - 1, 1_000_003)


def fingerprint() -> str:
    """A digest of the rules above (and of lowercasing, which comes after the NUL rule)."""
    rules = ["NUL to space", NUL_BYTE, "lowercase utf-8", POUND_SIGN_GARBLES, URL, URL_TOKEN,
             NUMBER_SHAPES, KEPT_PUNCTUATION, OTHER_SYMBOLS,
             "char_wb", CHAR_GRAM_WIDTHS, CHAR_GRAM_MAX_CHARS, CHAR_GRAM_HASH,
             "word grams", WORD_GRAM_HASH]
    return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]
