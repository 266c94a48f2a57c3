from collections import Counter

import tensorflow as tf

from pipeline.data import text
from pipeline.data import token_rules as rules
from pipeline.data import vocabulary


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
    # kept punctuation and other symbols side by side
    assert tokens("a@b!c#£5~?x*") == ["a", "b", "!", "c", "£", "5", "?", "x", "*"]


def test_a_nul_byte_is_a_space_and_the_rest_of_the_message_is_kept():
    # TensorFlow's lowercasing alone stops at a NUL: the spam cue after it would be lost
    assert tf.strings.lower(tf.constant("Hi\x00WIN"), encoding="utf-8").numpy() == b"hi"
    assert tokens("Hi\x00WIN £1000, call 09061701461") == [
        "hi", "win", "£", "xxnum", "call", "xxphone"]
    assert text.tokenize(tf.constant(["a\x00b", "\x00", "c"])).to_list() == [
        [b"a", b"b"], [], [b"c"]]


def test_vocabulary_is_frequency_ordered_and_measures_coverage():
    counts = Counter({"a": 5, "b": 5, "c": 1, "d": 3})
    words = vocabulary.build_vocabulary(counts, min_count=2, max_size=10)
    assert words == ["a", "b", "d"]
    assert vocabulary.coverage(counts, words) == 13 / 14


def test_encode_pads_truncates_and_marks_unknown_words():
    ids = text.encode_inputs(["b a zzz", "a", "a a a a a a"], ["a", "b"], max_length=4)
    assert ids["token_ids"].tolist() == [[3, 2, 1, 0], [2, 0, 0, 0], [2, 2, 2, 2]]


def test_links_in_every_shape_and_garbled_pound_signs_become_their_tokens():
    assert tokens("order here https:// goo.gl/sxRthR or https//x7.me/ab now") == [
        "order", "here", "xxurl", "or", "xxurl", "now"]
    assert tokens("see bit.ly/1QVGhx, shop.example.com and secure-bank.co.uk/login") == [
        "see", "xxurl", "xxurl", "and", "xxurl"]
    assert tokens("a \u00e5\u00a3200 prize, \u00c2\u00a35 or \ufffd400") == [
        "a", "£", "200", "prize", "£", "5", "or", "£", "400"]
    assert tokens("ok.me going, e.g. at 8.30") == ["ok", "me", "going", "e", "g", "at", "8",
                                                    "30"]


def _grams(messages, buckets=1000):
    grams = text.char_gram_ids(text.tokenize(tf.constant(messages)), buckets)
    return [sorted(row) for row in grams.to_list()]


def test_char_grams_are_the_hashed_2_to_5_grams_of_each_spaced_token():
    ok, empty, two, one_then_other = _grams(["ok", "", "Win  a\tPRIZE!", "a prize ! win"])
    assert len(ok) == 3 + 2 + 1 and empty == []      # " ok ": three 2-grams, two 3-grams...
    assert two == one_then_other                     # a bag: order and spacing do not count
    assert all(1 <= g < 1000 for g in two)
    assert _grams(["winnings"])[0] != _grams(["win"])[0]
    assert set(_grams(["win"])[0]) < set(_grams(["win winnings"])[0])
    long_token = "w" * 100                           # only the first characters are cut
    assert len(_grams([long_token])[0]) == sum(
        rules.CHAR_GRAM_MAX_CHARS + 2 - w + 1 for w in rules.CHAR_GRAM_WIDTHS)


def test_model_inputs_pad_tokens_to_max_length_and_grams_to_the_longest_message():
    inputs = text.encode_inputs(["win a prize", "ok", ""], ["a", "win"], max_length=4,
                                char_gram_buckets=100)
    assert inputs["token_ids"].tolist() == [[3, 2, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    grams = inputs["char_gram_ids"]
    assert grams.shape[0] == 3 and (grams[1] > 0).sum() == 6 and (grams[2] == 0).all()
    assert "char_gram_ids" not in text.encode_inputs(["ok"], ["a"], 4)


def test_word_grams_are_each_word_and_each_pair_of_neighbours_within_a_message():
    import tensorflow as tf

    def grams(messages, order=2):
        ids = text.word_gram_ids(text.tokenize(tf.constant(messages)), 1000, order)
        return [sorted(row) for row in ids.to_list()]

    words, pairs = grams(["win a prize", "", "ok"], 1), grams(["win a prize", "", "ok"])
    assert [len(row) for row in words] == [3, 0, 1]
    assert [len(row) for row in pairs] == [5, 0, 1]  # no pair across two messages
    assert set(words[0]) < set(pairs[0]) and all(1 <= g < 1000 for g in pairs[0])
    assert grams(["a prize"])[0] != grams(["prize a"])[0]  # a pair keeps its order
    assert grams(["win a"])[0] == grams(["  WIN   a "])[0]  # the same tokens, the same ids
    inputs = text.encode_inputs(["win a prize", "ok"], ["a"], 4, char_gram_buckets=1000,
                                word_grams=2)
    assert sorted(inputs["word_gram_ids"][0]) == pairs[0]
    assert sorted(g for g in inputs["word_gram_ids"][1] if g) == pairs[2]


def test_tokenize_over_the_joined_batch_gives_each_message_its_own_tokens():
    """tokenize() runs the rules over the batch joined into one string; it must give the
    tokens that standardizing each message alone gives, also at the messages' edges and
    for batches it must standardize message by message (a message holding its separator
    mark) and with NUL bytes."""
    edges = ["ΟΔΟΣ", "σΣ", "end http://", "http:// x", "www.", "x.com/", "9999", "12345 ",
             "£!", "", "   ", "WIN £1000 cash!! Call 09061701461", "ok\tthen\nbye",
             "bad \udcff utf-8".encode("utf-8", "surrogateescape")]
    odd = ["a\x1eb", "\x1e", "mid\x00dle", "last\x00x"]
    batches = [[], ["one"], edges, edges[::-1]] + [
        edges[:5] + [message] + edges[5:] for message in odd] + [edges + ["last\x00x"]]
    for batch in batches:
        texts = tf.constant(batch, tf.string)
        one_by_one = tf.strings.split(text.standardize(texts)).to_list()
        assert text.tokenize(texts).to_list() == one_by_one, batch
    assert tokens("Ok ΟΔΟΣ!") == ["ok", "οδος", "!"]
