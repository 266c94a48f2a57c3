"""Property tests (Hypothesis): arbitrary Unicode messages written in each supported format
come back from each reader as the same texts, in the same order, one row per message.
Readers: BatchScore's local engine (batch_files.read_messages), its Spark engine
(spark_engine.read_input), extra sources (corpus.read_source), and the review file
(review_queue.write_review_file), labelled and fed back as an extra source."""
import csv
import io
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.scoring import batch_files
from pipeline.data import corpus
from pipeline.monitoring import review_queue

SPECIAL = ["\u0085", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r", "\r\n",
           "\n", "\t", '"', "'", "=SUM(1+1)", "@SUM(1+1)*cmd|' /C calc'!A0", "+1", "-1",
           "e\u0301", "\u05e9\u05dc\u05d5\u05dd", "\U0001F600", "x" * 5000, "", ",", " "]
# any Unicode but NUL (refused by design) and lone surrogates (not UTF-8)
CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
PIECE = st.one_of(st.text(CHARACTERS, max_size=20), st.sampled_from(SPECIAL))
MESSAGE = st.lists(PIECE, max_size=4).map("".join)
MESSAGES = st.lists(MESSAGE, min_size=1, max_size=30)

QUICK = settings(max_examples=100, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="round-trip-"))


def _lines_safe(texts: list[str]) -> list[str]:
    """Plain text and tab lines cannot carry a \\n, nor a \\r at a line's end."""
    return [t.replace("\n", " ").rstrip("\r") for t in texts]


def _write(path: Path, texts: list[str], writer: str) -> None:
    """``texts`` as a batch input in one of the ways people write one."""
    frame = pd.DataFrame({"text": texts})
    if writer == "pandas-csv":
        frame.to_csv(path, index=False)
    elif writer == "pandas-csv-crlf":
        frame.to_csv(path, index=False, lineterminator="\r\n")
    elif writer == "pandas-tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif writer in ("csv-module", "csv-module-tsv"):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle, delimiter="\t" if writer.endswith("tsv") else ",")
            out.writerow(["id", "text"])
            out.writerows([f"m{i}", t] for i, t in enumerate(texts))
    elif writer in ("json-ascii", "json-unicode"):
        path.write_text("".join(json.dumps({"text": t}, ensure_ascii=writer == "json-ascii")
                                + "\n" for t in texts), encoding="utf-8")
    elif writer == "parquet":
        pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), path)
    else:  # plain text, one message a line
        path.write_bytes("".join(t + "\n" for t in texts).encode())


SUFFIX = {"pandas-csv": ".csv", "pandas-csv-crlf": ".csv", "pandas-tsv": ".tsv",
          "csv-module": ".csv", "csv-module-tsv": ".tsv", "json-ascii": ".jsonl",
          "json-unicode": ".jsonl", "parquet": ".parquet", "text": ".txt"}


def _expected(texts: list[str], writer: str) -> list[str]:
    if writer == "text":
        return _lines_safe(texts)
    if writer in ("pandas-csv", "pandas-tsv"):
        # pandas quotes a field for \n but not for \r: an unquoted \r just before the line
        # end is the line end's (\r\n). Such texts cannot be written this way.
        return [t.rstrip("\r") if not t.endswith("\r\n") else t for t in texts]
    return texts


def _writable(texts: list[str], writer: str) -> list[str]:
    if writer == "text":
        return _lines_safe(texts)
    if writer in ("pandas-csv", "pandas-tsv"):
        return [t.rstrip("\r") + ("." if t.endswith("\r") else "") for t in texts]
    return texts


@QUICK
@given(texts=MESSAGES, writer=st.sampled_from(sorted(SUFFIX)))
@example(texts=["Haha\u0085I know", "a\rb", "ok"], writer="pandas-tsv")
@example(texts=["a\rb"], writer="pandas-csv")  # pandas' parser split it in two rows
@example(texts=["a\r\nb", "c\rd"], writer="pandas-csv-crlf")
@example(texts=["\r"], writer="csv-module")
@example(texts=[" ", "\t", "", "b"], writer="pandas-csv")  # pandas skipped the spaces
def test_batch_inputs_come_back_from_the_local_engine(texts, writer):
    texts = _writable(texts, writer)
    folder = _folder()
    try:
        path = folder / f"in{SUFFIX[writer]}"
        _write(path, texts, writer)
        chunks = list(batch_files.read_messages(path, chunk_rows=7))
        read = pd.concat(chunks)["text"].tolist() if chunks else []
        assert read == _expected(texts, writer)
    finally:
        shutil.rmtree(folder)


LABELLED_TEXT = MESSAGE.filter(lambda t: t.strip() != "")


def _labelled_bytes(rows: list[tuple[str, str]], writer: str) -> tuple[bytes, str]:
    if writer == "tab-lines":
        return "".join(f"{label}\t{text}\n" for label, text in rows).encode(), "extra.txt"
    if writer in ("json-ascii", "json-unicode"):
        return "".join(json.dumps({"label": label, "text": text},
                                  ensure_ascii=writer == "json-ascii") + "\n"
                       for label, text in rows).encode(), "extra.jsonl"
    buffer = io.StringIO(newline="")
    delimiter = "\t" if writer.endswith("tsv") else ","
    out = csv.writer(buffer, delimiter=delimiter)
    out.writerow(["label", "text"])
    out.writerows(rows)
    return buffer.getvalue().encode(), "extra.tsv" if delimiter == "\t" else "extra.csv"


@QUICK
@given(rows=st.lists(st.tuples(st.sampled_from(["ham", "spam"]), LABELLED_TEXT),
                     min_size=1, max_size=30),
       writer=st.sampled_from(["tab-lines", "json-ascii", "json-unicode", "csv", "tsv"]))
@example(rows=[("ham", "Haha\u0085I know")], writer="tab-lines")
@example(rows=[("ham", "Haha\u0085I know")], writer="json-unicode")
@example(rows=[("ham", "TEXT")], writer="tab-lines")  # a message, not a header
@example(rows=[("spam", "label"), ("ham", "text")], writer="tab-lines")
@example(rows=[("spam", "a\rb\u2028c")], writer="csv")
@example(rows=[("ham", "''Tis the season"), ("spam", "'=x")], writer="csv")  # read as written
def test_extra_sources_come_back(rows, writer):
    if writer == "tab-lines":  # the text is all after the first tab, up to the line end
        rows = [(label, text) for label, text in zip(
            [r[0] for r in rows], _lines_safe([r[1] for r in rows])) if text.strip()]
        if not rows:
            return
    data, name = _labelled_bytes(rows, writer)
    source = corpus.read_source(data, corpus.SourceSpec(name, None))
    assert source.texts == [text for _, text in rows]
    assert source.labels.tolist() == [label == "spam" for label, _ in rows]


@QUICK
@given(texts=st.lists(LABELLED_TEXT, min_size=1, max_size=30, unique=True),
       labeller=st.sampled_from(["pandas", "csv-module"]))
@example(texts=["=SUM(1+1)", "'=x", "@SUM(1+1)*cmd|' /C calc'!A0", "\rCR", "\tTAB"],
         labeller="pandas")
def test_a_labelled_review_file_comes_back_as_an_extra_source(texts, labeller):
    queue = pd.DataFrame({"id": [f"{i}" for i in range(len(texts))], "text": texts,
                          "spam_probability": 0.5, "model_version": 1,
                          "reason": review_queue.NEAR_THRESHOLD, "label": ""})
    labels = ["spam" if i % 3 == 0 else "ham" for i in range(len(texts))]
    folder = _folder()
    try:
        review = folder / "review.csv"
        review_queue.write_review_file(queue, review)
        labelled = folder / "reviewed.csv"
        if labeller == "pandas":  # an operator's script: read, fill the column, save
            table = pd.read_csv(review, dtype=str, keep_default_na=False)
            table.assign(label=labels).to_csv(labelled, index=False, lineterminator="\r\n")
        else:
            with open(review, newline="", encoding="utf-8") as handle:
                table = list(csv.reader(handle))
            with open(labelled, "w", newline="", encoding="utf-8") as handle:
                out = csv.writer(handle)
                out.writerow(table[0])
                at = table[0].index("label")
                out.writerows(row[:at] + [label] + row[at + 1:]
                              for row, label in zip(table[1:], labels))
        source = corpus.read_source(labelled.read_bytes(),
                                    corpus.SourceSpec(str(labelled), None))
        assert list(zip(source.texts, source.labels.tolist())) == [
            (t, label == "spam") for t, label in zip(texts, labels)]
    finally:
        shutil.rmtree(folder)


# Spark: one session for the module, few examples (each read is a Spark job).
@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pip install -r requirements-spark.txt")
    if shutil.which("java") is None:
        pytest.skip("no java: apt-get install openjdk-17-jre-headless (.ci/run does)")
    from pipeline.scoring import spark_engine

    session = spark_engine.spark_session("local[1]", {}, "round-trips")
    session.sparkContext.setLogLevel("ERROR")
    yield session


SPARK = settings(max_examples=15, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@SPARK
@given(texts=MESSAGES, writer=st.sampled_from(sorted(SUFFIX)))
@example(texts=["a\r\nb", "c\rd", "e\n"], writer="pandas-csv-crlf")  # Spark made \r\n \n
@example(texts=["a\rb", "x\u2028y"], writer="text")
@example(texts=['{"text": "a"}\rx'], writer="json-unicode")
def test_the_spark_engine_reads_what_the_local_engine_reads(spark, texts, writer):
    from pipeline.scoring import spark_engine

    texts = _writable(texts, writer)
    folder = _folder()
    try:
        path = folder / f"in{SUFFIX[writer]}"
        _write(path, texts, writer)
        files = spark_engine.local_files(str(path))
        kind = spark_engine.input_format(str(path), files)
        frame = spark_engine.read_input(spark, str(path), files, kind).toPandas()
        local = pd.concat(batch_files.read_messages(path, chunk_rows=7))
        if "id" in frame and writer not in ("csv-module", "csv-module-tsv"):
            frame = frame.assign(order=frame["id"].astype(int)).sort_values("order")
        assert frame["text"].tolist() == local["text"].tolist() == _expected(texts, writer)
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("name, data, outcome", [
    # Spark's own line-end detection turned a quoted \r\n into \n in a CRLF file
    ("crlf.csv", b'id,text\r\n1,"a\r\nb"\r\n2,c\rd\r\n', ["a\r\nb", "c\rd"]),
    ("lf.tsv", b'text\n"a\r"\nb\rc\n', ["a\r", "b\rc"]),
    ("lines.txt", b"a\rb\nc\r\n", ["a\rb", "c"]),
    # with lineSep="\n" Spark's JSON reader kept the first object and dropped the second
    ("two.jsonl", b'{"text": "a"}\r{"text": "b"}\n', "is not JSON"),
    ("mixed.csv", b"text\r\na\nb\r\n", "Spark reads one kind of line end per file"),
])
def test_spark_regressions(spark, tmp_path, name, data, outcome):
    from pipeline.scoring import spark_engine

    path = tmp_path / name
    path.write_bytes(data)
    files = spark_engine.local_files(str(path))
    kind = spark_engine.input_format(str(path), files)
    if isinstance(outcome, str):
        with pytest.raises(batch_files.BatchInputError, match=outcome):
            spark_engine.read_input(spark, str(path), files, kind).collect()
    else:
        frame = spark_engine.read_input(spark, str(path), files, kind).toPandas()
        assert frame["text"].tolist() == outcome
