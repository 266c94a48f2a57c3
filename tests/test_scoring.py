import io

import numpy as np
import pandas as pd
import pytest

from pipeline.scoring import batch_files
from pipeline.scoring import local_engine


def fake_score(texts):
    """Stands in for the signature in these format tests: probability from the length."""
    p = np.array([min(len(t), 100) / 100 for t in texts], np.float32)
    return p, np.where(p >= 0.5, "spam", "ham")


def score_to_frame(messages, batch_size=3, concurrent_batches=1):
    out = io.BytesIO()
    rows = local_engine.score_messages(messages, batch_files.CsvSink(out), fake_score, model_version=7,
                                  batch_size=batch_size, concurrent_batches=concurrent_batches)
    out.seek(0)
    frame = pd.read_csv(out, dtype={"id": str, "text": str}, keep_default_na=False)
    assert rows == len(frame)
    return frame


def test_csv_with_ids_keeps_every_row_in_order(tmp_path):
    path = tmp_path / "in.csv"
    texts = ["short", "a much longer message " * 5, "", "NA", "mid length one", "x"]
    pd.DataFrame({"id": [f"m{i}" for i in range(6)], "text": texts}).to_csv(path, index=False)
    frame = score_to_frame(batch_files.read_messages(path, chunk_rows=4))
    assert frame["id"].tolist() == [f"m{i}" for i in range(6)]
    assert frame["text"].tolist() == texts
    assert frame["spam_probability"].tolist() == pytest.approx(fake_score(texts)[0].tolist())
    assert set(frame["model_version"]) == {7}


def test_plain_text_lines_get_line_numbers(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("first\r\nsecond\n\nlast".encode())
    frame = score_to_frame(batch_files.read_messages(path, chunk_rows=2))
    assert frame["id"].tolist() == ["1", "2", "3", "4"]
    assert frame["text"].tolist() == ["first", "second", "", "last"]


def test_csv_without_text_column_is_refused(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("message\nhello\n")
    with pytest.raises(batch_files.BatchInputError, match="no 'text' column"):
        list(batch_files.read_messages(path, 10))


def test_float32_probabilities_round_trip_exactly():
    texts = [f"message {i}" * (i % 13) for i in range(50)]
    frame = score_to_frame([pd.DataFrame({"id": range(50), "text": texts})], batch_size=7)
    expected = fake_score(texts)[0]
    assert np.array_equal(frame["spam_probability"].to_numpy(np.float32), expected)


def test_shards_joined_in_order_equal_one_pass(tmp_path):
    texts = [f"message {i} " * (i % 7) for i in range(23)]
    chunks = lambda: batch_files.read_messages(_write_lines(tmp_path, texts), chunk_rows=4)  # noqa: E731
    whole = score_to_frame(chunks())
    parts = []
    for shard in range(3):
        part = tmp_path / f"part-{shard}.parquet"
        local_engine.score_messages(local_engine.shard_chunks(chunks(), shard, 3),
                               batch_files.ParquetSink(part), fake_score, 7, batch_size=3)
        parts.append(part)
    out = io.BytesIO()
    assert local_engine.join_shards(parts, batch_files.CsvSink(out)) == 23
    out.seek(0)
    joined = pd.read_csv(out, dtype={"id": str, "text": str}, keep_default_na=False)
    pd.testing.assert_frame_equal(joined, whole)


def test_concurrent_batches_give_the_same_rows_in_the_same_order():
    texts = [f"message {i} " * (i % 11) for i in range(200)]
    messages = lambda: [pd.DataFrame({"id": range(start, start + 50),  # noqa: E731
                                      "text": texts[start:start + 50]})
                        for start in range(0, 200, 50)]
    one_at_a_time = score_to_frame(messages(), batch_size=7)
    concurrent = score_to_frame(messages(), batch_size=7, concurrent_batches=3)
    pd.testing.assert_frame_equal(concurrent, one_at_a_time)
    assert concurrent["id"].tolist() == [str(i) for i in range(200)]


def test_a_failing_write_stops_the_run():
    class FullDisk:
        def write(self, frame):
            raise OSError(28, "No space left on device")

        def close(self):
            raise AssertionError("a failed output must not be closed as if complete")

    with pytest.raises(OSError, match="No space left"):
        local_engine.score_messages([pd.DataFrame({"id": ["1"], "text": ["hi"]})] * 3, FullDisk(),
                               fake_score, 7, batch_size=2)


def test_csv_output_of_no_rows_still_has_its_header(tmp_path):
    path = tmp_path / "out.csv"
    assert local_engine.score_messages([], batch_files.CsvSink(path), fake_score, 7, batch_size=2) == 0
    assert path.read_text().splitlines() == [",".join(f'"{c}"' for c in batch_files.OUTPUT_COLUMNS)]


def _write_lines(tmp_path, texts):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(texts) + "\n")
    return path


def test_json_lines_rows_without_an_id_get_their_row_number(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a"}\n{"id": "x7", "text": "b"}\n{"text": "c"}\n')
    frame = score_to_frame(batch_files.read_messages(path, chunk_rows=2))
    assert frame["id"].tolist() == ["1", "x7", "3"]
    assert frame["text"].tolist() == ["a", "b", "c"]


@pytest.mark.slow  # three Python processes that start TensorFlow
def test_one_thread_per_batch_takes_effect_only_before_tensorflow_starts():
    import subprocess
    import sys

    def run(program: str) -> str:
        done = subprocess.run([sys.executable, "-c", "import tensorflow as tf\n"
                               "from pipeline.serving import batching\n" + program],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.split()[-1]

    assert run("print(batching.one_tensorflow_thread_per_batch(),"
               " tf.config.threading.get_intra_op_parallelism_threads())") == "1"
    assert run("print(batching.one_tensorflow_thread_per_batch())") == "True"
    # once TensorFlow has run (as after TrainRNN in the same process): no error, no change
    assert run("tf.constant([1.0]) + 1.0\n"
               "print(batching.one_tensorflow_thread_per_batch())") == "False"


class RecordingSink:
    """Keeps what score_messages writes; closing it is what marks an output complete."""

    def __init__(self):
        self.tables, self.closed = [], False

    def write(self, table):
        self.tables.append(table)

    def close(self):
        self.closed = True


def test_a_chunk_that_cannot_be_read_stops_the_run_after_the_chunks_before_it():
    def chunks():
        yield pd.DataFrame({"id": ["1", "2"], "text": ["a", "b"]})
        yield pd.DataFrame({"id": ["3"], "text": ["c"]})
        raise batch_files.BatchInputError("batch input x.jsonl line 4 is not JSON")

    sink = RecordingSink()
    with pytest.raises(batch_files.BatchInputError, match="line 4"):
        local_engine.score_messages(chunks(), sink, fake_score, 7, batch_size=1,
                               concurrent_batches=3)
    assert not sink.closed
    assert sum(len(table) for table in sink.tables) <= 3


def test_a_failing_batch_stops_the_run_and_the_output_stays_incomplete():
    def score(texts):
        if "bad" in texts:
            raise RuntimeError("signature failed")
        return fake_score(texts)

    messages = [pd.DataFrame({"id": ["1", "2"], "text": ["ok", "fine"]}),
                pd.DataFrame({"id": ["3", "4"], "text": ["bad", "ok"]}),
                pd.DataFrame({"id": ["5"], "text": ["later"]})]
    sink = RecordingSink()
    with pytest.raises(RuntimeError, match="signature failed"):
        local_engine.score_messages(messages, sink, score, 7, batch_size=1, concurrent_batches=2)
    assert not sink.closed
    assert [table["id"].to_pylist() for table in sink.tables] in ([], [["1", "2"]])


def test_many_chunks_in_flight_keep_every_row_in_input_order():
    texts = [f"w{i} " * (i * 7 % 23) for i in range(1000)]
    messages = [pd.DataFrame({"id": [str(i) for i in range(start, min(start + 37, 1000))],
                              "text": texts[start:start + 37]})
                for start in range(0, 1000, 37)]
    frame = score_to_frame(messages, batch_size=5, concurrent_batches=4)
    assert frame["id"].tolist() == [str(i) for i in range(1000)]
    assert frame["text"].tolist() == texts
    assert frame["spam_probability"].tolist() == pytest.approx(fake_score(texts)[0].tolist())
