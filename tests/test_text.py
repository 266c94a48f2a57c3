from collections import Counter

import tensorflow as tf

from pipeline import text, vocabulary


def tokens(message: str) -> list[str]:
    return [t.decode() for t in text.tokenize(tf.constant([message])).to_list()[0]]


def test_standardize_keeps_spam_cues_as_tokens():
    assert tokens("WIN £1000 cash!! Call 09061701461 or visit www.win.com/claim") == [
        "win", "£", "xxnum", "cash", "!", "!", "call", "xxphone", "or", "visit", "xxurl"]
    assert tokens("Text WIN to 87121 by 2005, 150p/msg, 12345678901234 or 123") == [
        "text", "win", "to", "xxcode", "by", "xxnum", "150p", "msg", "xxphone", "or", "123"]


def test_standardize_handles_unicode_and_empty_messages():
    assert tokens("Émoji 😀 中文 OK?") == ["émoji", "中文", "ok", "?"]
    assert tokens("") == []


def test_vocabulary_is_frequency_ordered_and_measures_coverage():
    counts = Counter({"a": 5, "b": 5, "c": 1, "d": 3})
    words = vocabulary.build_vocabulary(counts, min_count=2, max_size=10)
    assert words == ["a", "b", "d"]
    assert vocabulary.coverage(counts, words) == 13 / 14


def test_encode_pads_truncates_and_marks_unknown_words():
    ids = text.encode_numpy(["b a zzz", "a", "a a a a a a"], ["a", "b"], max_length=4)
    assert ids.tolist() == [[3, 2, 1, 0], [2, 0, 0, 0], [2, 2, 2, 2]]
