"""Text is data: only \\n and \\r\\n end a line. The characters str.splitlines also breaks at
(U+0085, U+2028, U+2029, \\x0b, \\x0c, \\x1c-\\x1e, a lone \\r) stay inside the message in every
reader: labelled files, BatchScore's local readers, the audit log; and the review file's
spreadsheet-safe cells come back as the texts they were."""
import csv
import io
import json

import pandas as pd
import pytest

from pipeline.scoring import batch_files
from pipeline.data import labelled_files
from pipeline.monitoring import review_queue
from pipeline.serving import model_base
from pipeline.data.spreadsheet_cells import neutralise_cell, restore_cell

SEPARATORS = ["\u0085", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r"]


def _parse(data: bytes, name: str):
    return labelled_files.parse_labelled(data, name, "[test] extra_sources")


def _batch(tmp_path, name: str, data: bytes) -> list[str]:
    path = tmp_path / name
    path.write_bytes(data)
    return pd.concat(batch_files.read_messages(path, chunk_rows=2))["text"].tolist()


def test_a_tab_line_with_u0085_is_one_message():
    parsed = _parse("ham\tHaha\u0085I know\nspam\tWIN\n".encode(), "day.tsv")
    assert parsed.texts == ["Haha\u0085I know", "WIN"]
    assert parsed.lines == [1, 2] and parsed.labels.tolist() == [False, True]


def test_a_json_line_with_u0085_is_one_message():
    data = ('{"label": "ham", "text": "Haha\u0085I know"}\n'
            '{"label": "spam", "text": "WIN"}\n').encode()
    assert _parse(data, "day.jsonl").texts == ["Haha\u0085I know", "WIN"]


@pytest.mark.parametrize("separator", SEPARATORS, ids=lambda c: f"U+{ord(c):04X}")
def test_each_separator_stays_inside_the_message_of_each_labelled_format(separator):
    text = f"one{separator}two"
    tab = f"ham\t{text}\r\nspam\tthree\r\n".encode()
    assert _parse(tab, "day.txt").texts == [text, "three"]
    assert _parse(tab, "day.txt").lines == [1, 2]
    jsonl = "".join(json.dumps({"label": label, "text": t}, ensure_ascii=False) + "\n"
                    for label, t in (("ham", text), ("spam", "three"))).encode()
    assert _parse(jsonl, "day.jsonl").texts == [text, "three"]
    for delimiter, name in ((",", "day.csv"), ("\t", "day.tsv")):
        table = pd.DataFrame({"label": ["ham", "spam"], "text": [text, "three"]})
        data = table.to_csv(index=False, sep=delimiter).encode()  # a lone \r is not quoted
        assert _parse(data, name).texts == [text, "three"], name


@pytest.mark.parametrize("separator", SEPARATORS, ids=lambda c: f"U+{ord(c):04X}")
def test_each_separator_stays_inside_the_message_of_each_batch_format(tmp_path, separator):
    texts = [f"one{separator}two", "three", f"{separator}four"]
    frame = pd.DataFrame({"text": texts})
    assert _batch(tmp_path, "a.csv", frame.to_csv(index=False).encode()) == texts
    assert _batch(tmp_path, "a.tsv", frame.to_csv(index=False, sep="\t").encode()) == texts
    assert _batch(tmp_path, "b.csv", frame.to_csv(index=False, lineterminator="\r\n").encode()
                  ) == texts
    jsonl = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode()
    assert _batch(tmp_path, "a.jsonl", jsonl) == texts
    assert _batch(tmp_path, "a.txt", "\n".join(texts).encode()) == texts


@pytest.mark.parametrize("data, texts", [
    (b"id,text\n1,a\rb\n2,c\n", ["a\rb", "c"]),                       # unquoted lone \r
    (b"text\na\rb\nc\n", ["a\rb", "c"]),                              # one column
    (b'id,text\n1,"a\rb"\n2,c\n', ["a\rb", "c"]),                     # quoted
    (b"id,text\r\n1,ab\r\n2,c\r\n", ["ab", "c"]),                     # CRLF file
    (b'id,text\r\n1,"a\r\nb"\r\n2,c\rd\r\n3,"y\r"\r\n', ["a\r\nb", "c\rd", "y\r"]),
    (b'text\n"a\r"\nb\rc\n"d"\r\n', ["a\r", "b\rc", "d"]),            # mixed line ends
    (b"text\na\r\r\nb\n", ["a\r", "b"]),                              # \r then CRLF
    (b'text\na"b\rc\n"q""x\r"\n', ['a"b\rc', 'q"x\r']),               # quotes as data
])
def test_csv_and_tsv_rows_end_at_lf_and_crlf_only(tmp_path, data, texts):
    """pandas' parser alone ended a row at an unquoted lone \r (``a\rb`` gave the rows
    ``a`` and ``b``, silently), and pandas' own to_csv leaves that \r unquoted."""
    assert _batch(tmp_path, "in.csv", data) == texts
    assert _batch(tmp_path, "in.tsv", data.replace(b",", b"\t")) == texts


def test_a_one_column_csv_keeps_a_message_of_spaces(tmp_path):
    """Found by tests/test_text_round_trips.py: pandas' parser skipped a line of spaces
    as blank; Spark reads it as a message, and so does the local engine now. An empty
    line is no message in either (writers quote an empty field: "")."""
    assert _batch(tmp_path, "spaces.csv", b'text\n \n\t\n\n""\nb\n') == [" ", "\t", "", "b"]
    assert _batch(tmp_path, "crlf.csv", b'text\r\n  \r\n"a\r\n \r\n"\r\nc\rd\r\n') == [
        "  ", "a\r\n \r\n", "c\rd"]
    assert _batch(tmp_path, "spaces.tsv", b"id\ttext\n1\t \n  \n") == [" ", ""]


def test_a_cr_only_csv_is_refused_with_the_fix(tmp_path):
    with pytest.raises(batch_files.BatchInputError, match="lone carriage return.*tr"):
        _batch(tmp_path, "mac.csv", b"text\ra\rb\r")


def test_plain_text_loses_one_line_end_only(tmp_path):
    data = b"a\rb\nc\r\nd\r\r\ne\n\nf\r"
    assert _batch(tmp_path, "in.txt", data) == ["a\rb", "c", "d\r", "e", "", "f"]


def test_json_lines_end_at_lf_only(tmp_path):
    data = '{"text": "a\u2028b"}\r\n{"text": "c\u0085d"}\n'.encode()
    assert _batch(tmp_path, "in.jsonl", data) == ["a\u2028b", "c\u0085d"]
    with pytest.raises(batch_files.BatchInputError, match="line 1 is not JSON"):
        _batch(tmp_path, "two.jsonl", b'{"text": "a"}\r{"text": "b"}\n')


def test_labelled_csv_lines_are_numbered_by_lf_and_a_bad_row_is_named():
    data = b'label,text\r\nham,"a\r\nb"\r\nspam,c\rd\r\nham,\r\n'
    with pytest.raises(labelled_files.LabelledFileError, match=r"day\.csv, line 5: the text"):
        _parse(data, "day.csv")
    parsed = _parse(data[:-len(b"ham,\r\n")], "day.csv")
    assert parsed.texts == ["a\r\nb", "c\rd"] and parsed.lines == [2, 4]


def test_the_audit_log_keeps_a_line_separator_inside_a_record(tmp_path):
    base = tmp_path / "spam_ham"
    model_base.append_audit(base, "promoted", note="a\u2028b")
    with open(model_base.audit_log_path(base), "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"event": "note", "note": "c\u2029d\x85"},
                                ensure_ascii=False) + "\n")
    records = model_base.read_audit(base)
    assert [r["note"] for r in records] == ["a\u2028b", "c\u2029d\x85"]


@pytest.mark.parametrize("text, cell", [
    ("=SUM(1+1)", "'=SUM(1+1)"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(1)", "'@SUM(1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("'=x", "''=x"), ("'quoted'", "''quoted'"),
    ("plain", "plain"), ("", ""), ("'", "''"), ("a=b", "a=b"),
])
def test_spreadsheet_cells_are_neutralised_and_restored(text, cell):
    assert neutralise_cell(text) == cell
    assert restore_cell(cell) == text


def _queue(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"=id{i}" for i in range(len(texts))], "text": texts,
                         "spam_probability": 0.5, "model_version": 1,
                         "reason": review_queue.NEAR_THRESHOLD, "label": ""})


def test_a_labelled_review_file_gives_back_the_texts(tmp_path):
    texts = ["=HYPERLINK(\"http://x\")", "@SUM(1+1)*cmd|' /C calc'!A0", "+1", "-1",
             "'already quoted", "\tTAB", "\rCR", "Haha\u0085I know", "a\rb", "ok\r"]
    path = tmp_path / "review.csv"
    review_queue.write_review_file(_queue(texts), path)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # so that Excel reads UTF-8
    with open(path, newline="", encoding="utf-8-sig") as handle:
        cells = list(csv.DictReader(handle))
    assert [c["text"] for c in cells] == [neutralise_cell(t) for t in texts]
    assert all(c["id"].startswith("'=") for c in cells)
    labelled = pd.read_csv(path, dtype=str, keep_default_na=False).assign(label="ham")
    buffer = io.StringIO()
    labelled.to_csv(buffer, index=False, lineterminator="\r\n")
    assert _parse(buffer.getvalue().encode(), "reviewed.csv").texts == texts


def test_the_review_queue_leaves_out_labelled_texts():
    chunk = pd.DataFrame({"id": ["1", "2", "3", "4"], "text": ["known", "new", "new", "other"],
                          "spam_probability": [0.5, 0.5, 0.6, 0.4], "model_version": 1})
    queue = review_queue.review_queue([chunk], 0.5, review_queue.QueuePolicy(max_rows=10),
                                      labelled_texts=frozenset({"known"}))
    assert sorted(queue["text"]) == ["new", "other"]


@pytest.mark.parametrize("name, data", [
    ("mac.tsv", b"ham\thello there\rspam\tWIN a prize\rham\tok\r"),
    ("mac.csv", b"label,text\rham,hi\rspam,win\r"),
])
def test_a_labelled_file_of_cr_ended_lines_is_refused_not_merged(name, data):
    """Found in review: it used to come back as one ham message holding a spam one."""
    with pytest.raises(labelled_files.LabelledFileError, match="lone carriage return.*tr"):
        _parse(data, name)


@pytest.mark.parametrize("name, data", [
    ("mac.csv", b"text,id\rhello,1\rworld,2\r"),  # 'text' not last: it read as 0 rows
    ("mac.txt", b"a\rb\rc\r"),
])
def test_a_batch_file_of_cr_ended_lines_is_refused_not_emptied(tmp_path, name, data):
    with pytest.raises(batch_files.BatchInputError, match="lone carriage return.*tr"):
        _batch(tmp_path, name, data)


def test_a_quoted_header_after_a_byte_order_mark_survives_a_line_of_spaces(tmp_path):
    """Found in review: the BOM and the quoted first column name were quoted again."""
    data = '\ufeff"id","text"\n"7","a"\n   \n'.encode()
    path = tmp_path / "bom.csv"
    path.write_bytes(data)
    chunk = pd.concat(batch_files.read_messages(path, chunk_rows=10))
    assert chunk["id"].tolist() == ["7", "   "] and chunk["text"].tolist() == ["a", ""]


def test_only_a_review_file_has_its_apostrophes_removed():
    """A labelled file of your own is read exactly; a labelled copy of a review file (its
    model_version and reason columns) gets back the texts the review file neutralised."""
    own = _parse("label,text\nham,''Tis the season\nham,'-- sent from my phone\n".encode(),
                 "own.csv")
    assert own.texts == ["''Tis the season", "'-- sent from my phone"]
    review = _parse("id,text,spam_probability,model_version,reason,label\n"
                    "1,'=SUM(1+1),0.5,1,near threshold,spam\n2,''Tis,0.4,1,near threshold,ham\n"
                    .encode(), "reviewed.csv")
    assert review.texts == ["=SUM(1+1)", "'Tis"]
