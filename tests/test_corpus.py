import hashlib
import http.server
import threading

import pytest

from conftest import serve_folder, zip_bytes
from pipeline.data import corpus, download

FAST = download.DownloadPolicy(connect_timeout=2, read_timeout=2, attempts=3,
                             backoff_seconds=0.01)


def test_parse_counts_malformed_lines_instead_of_dropping_them_silently():
    data = "ham\thello there\nspam\tWIN now\nno tab here\nbogus\tx\nham\t   \n".encode()
    parsed = corpus.parse_corpus(data, max_malformed_share=0.9)
    assert parsed.messages["text"].tolist() == ["hello there", "WIN now"]
    assert parsed.malformed == {"no_tab": 1, "unknown_label": 1, "empty_text": 1}
    assert parsed.lines == 5


def test_parse_fails_when_too_many_lines_are_malformed():
    with pytest.raises(corpus.CorpusError, match="max_malformed_share"):
        corpus.parse_corpus(b"ham\tok\ngarbage\n", max_malformed_share=0.1)


def test_repeated_texts_are_dropped_keeping_the_first():
    parsed = corpus.parse_corpus(b"ham\ta\nspam\tb\nham\ta\nham\tc\n")
    messages, dropped = corpus.drop_repeated_texts(parsed.messages)
    assert dropped == 1
    assert messages["line"].tolist() == [1, 2, 4]


def test_split_is_stratified_and_reproducible(small_corpus):
    table, stats = corpus.build_corpus_table(small_corpus, seed=0, max_malformed_share=0.01)
    again, _ = corpus.build_corpus_table(small_corpus, seed=0, max_malformed_share=0.01)
    other, _ = corpus.build_corpus_table(small_corpus, seed=1, max_malformed_share=0.01)
    assert table["split"].tolist() == again["split"].tolist()
    assert table["split"].tolist() != other["split"].tolist()
    assert stats["repeated_texts_dropped"] == 3
    for label in ("ham", "spam"):
        n = sum(stats["splits"][s][label] for s in corpus.SPLITS)
        assert stats["splits"]["train"][label] == round(0.7 * n)
        assert stats["splits"]["validation"][label] == round(0.1 * n)


def test_real_corpus_facts(shared_zip):
    member = corpus.read_corpus_member(shared_zip.read_bytes())
    corpus.verify_sha256(member, "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d")
    table, stats = corpus.build_corpus_table(member, seed=0, max_malformed_share=0.01)
    assert stats["lines"] == 5574
    assert stats["repeated_texts_dropped"] == 403
    assert stats["labels"] == {"ham": 4518, "spam": 653}
    assert sum(sum(s.values()) for s in stats["splits"].values()) == 5171


def test_checksum_mismatch_names_both_digests_and_the_setting():
    actual = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(corpus.CorpusError) as error:
        corpus.verify_sha256(b"other", "0" * 64)
    assert actual in str(error.value) and "0" * 64 in str(error.value)
    assert "[DownloadCorpus] sha256" in str(error.value)


@pytest.mark.parametrize("archive, message", [
    (b"<html>not found</html>", "not a zip"),
    (zip_bytes({"readme": b"x"}), "no member 'SMSSpamCollection'"),
    (zip_bytes({"../SMSSpamCollection": b"ham\tx\n"}), "unsafe member names"),
    (zip_bytes({"/etc/SMSSpamCollection": b"ham\tx\n"}), "unsafe member names"),
])
def test_bad_archives_are_refused_with_a_reason(archive, message):
    with pytest.raises(corpus.CorpusError, match=message):
        corpus.read_corpus_member(archive)


def test_zip_bomb_is_refused_before_decompressing():
    bomb = zip_bytes({"SMSSpamCollection": b"ham\t" + b"a" * 5_000_000})
    assert len(bomb) < 50_000
    with pytest.raises(corpus.CorpusError, match="max_member_bytes"):
        corpus.read_corpus_member(bomb, max_member_bytes=1_000_000)


def test_fetch_reads_file_urls_and_plain_paths(tmp_path):
    path = tmp_path / "a b.zip"
    path.write_bytes(b"payload")
    assert download.fetch(str(path), FAST) == b"payload"
    assert download.fetch(path.as_uri(), FAST) == b"payload"


def test_fetch_refuses_other_schemes():
    with pytest.raises(corpus.CorpusError, match="unsupported URL scheme 'ftp'"):
        download.fetch("ftp://example.org/x.zip", FAST)


def test_fetch_over_http_reports_progress(tmp_path):
    (tmp_path / "c.zip").write_bytes(b"z" * 200_000)
    seen = []
    with serve_folder(tmp_path) as url:
        data = download.fetch(f"{url}/c.zip", FAST, on_progress=lambda n, total: seen.append((n, total)))
    assert data == b"z" * 200_000
    assert seen[-1] == (200_000, 200_000)


def test_fetch_does_not_retry_a_missing_file(tmp_path):
    with serve_folder(tmp_path) as url:
        with pytest.raises(corpus.CorpusError, match="HTTP 404"):
            download.fetch(f"{url}/missing.zip", FAST)


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 500 twice, then the payload."""

    calls = 0

    def do_GET(self):
        type(self).calls += 1
        if type(self).calls <= 2:
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"done")

    def log_message(self, *args):
        pass


def test_fetch_retries_server_errors_then_succeeds():
    server = http.server.HTTPServer(("127.0.0.1", 0), _FlakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x.zip"
        assert download.fetch(url, FAST) == b"done"
        assert _FlakyHandler.calls == 3
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_gives_up_with_a_clear_error_when_nothing_answers():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(corpus.CorpusError, match="after 3 attempts"):
        download.fetch(f"http://127.0.0.1:{port}/x.zip", FAST)


def test_texts_that_look_like_missing_values_stay_text(tmp_path):
    table, _ = corpus.build_corpus_table(b"ham\tNA\nham\tnull\nspam\tWIN\n", 0, 0.0)
    path = tmp_path / "m.csv"
    corpus.write_corpus_table(table, path)
    assert corpus.read_corpus_table(path)["text"].tolist() == ["NA", "null", "WIN"]


def test_only_a_line_feed_ends_a_corpus_line_and_the_table_keeps_every_text(tmp_path):
    """U+0085, U+2028, lone carriage returns...: data, in the corpus and in messages.csv
    (pandas leaves a lone \r unquoted unless told to quote every text)."""
    texts = ["a\rb", "c\u0085d", "e\u2028f\u2029", "g\x0bh\x0c", "i\x1cj\x1dk\x1e", "l\r",
             "\rm"]
    data = "".join(f"ham\t{text}\r\n" for text in texts).encode()
    parsed = corpus.parse_corpus(data, max_malformed_share=0.0)
    assert parsed.messages["text"].tolist() == texts and parsed.lines == len(texts)
    table, _ = corpus.build_corpus_table(data, 0, 0.0)
    path = tmp_path / "messages.csv"
    corpus.write_corpus_table(table, path)
    assert corpus.read_corpus_table(path).equals(table)
