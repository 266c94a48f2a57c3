"""Batch scoring: stream messages through the served signature, keep every row in order.

Messages come in chunks (read by :mod:`pipeline.scoring.batch_files`) and the scores go out chunk
by chunk to a sink, so memory stays flat whatever the input size. Every input row
appears in the output, in input order: the row count out always equals the row count in.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

from pipeline.scoring.batch_files import OUTPUT_COLUMNS, scored_table
from pipeline.serving.batching import ScoredBatches, ScoreFunction

def score_messages(messages: Iterable[pd.DataFrame], sink, score: ScoreFunction,
                   model_version: int, batch_size: int, concurrent_batches: int = 1,
                   on_progress: Callable[[int], None] | None = None) -> int:
    """Score every ``id``/``text`` chunk of ``messages`` and write it to ``sink``, in order.

    Three things overlap so that no core waits: the next chunk is read while this one is
    scored, ``concurrent_batches`` batches are in the signature at a time (the batches of
    chunk k+1 start while the last ones of chunk k finish), and a scored chunk is written
    while later ones are scored. At most four chunks are held at once (one read ahead, two
    being scored, one being written), so memory does not grow with the input. Returns the
    number of rows written, which always equals the number of rows read.
    """
    rows = 0
    in_flight: deque = deque()  # (chunk, its batches in the pool), oldest first
    written: Future | None = None

    def write_oldest() -> None:
        nonlocal rows, written
        chunk, batches = in_flight.popleft()
        probabilities, labels = batches.result()
        if written:
            written.result()  # in order, and a failed write stops the run
        written = writer.submit(
            lambda: sink.write(scored_table(chunk, probabilities, labels, model_version)))
        rows += len(chunk)
        if on_progress:
            on_progress(rows)

    with ThreadPoolExecutor(max(concurrent_batches, 1), "score") as pool, \
            ThreadPoolExecutor(1, "read") as reader, ThreadPoolExecutor(1, "write") as writer:
        for chunk in _read_ahead(messages, reader):
            texts = chunk["text"].tolist()
            in_flight.append((chunk, ScoredBatches(texts, score, batch_size, pool)))
            if len(in_flight) > 1:
                write_oldest()
        while in_flight:
            write_oldest()
        if written:
            written.result()
    sink.close()
    return rows


def _read_ahead(chunks: Iterable[pd.DataFrame], reader: Executor) -> Iterator[pd.DataFrame]:
    """``chunks`` in order, the next one read by ``reader`` while the caller uses this one;
    an error reading a chunk is raised where that chunk would have been yielded."""
    chunks = iter(chunks)
    end = object()
    following = reader.submit(next, chunks, end)
    while True:
        chunk = following.result()
        if chunk is end:
            return
        following = reader.submit(next, chunks, end)
        yield chunk


def shard_chunks(chunks: Iterable[pd.DataFrame], shard: int, shards: int
                 ) -> Iterator[pd.DataFrame]:
    """The chunks that belong to ``shard`` of ``shards``: chunk k goes to shard k % shards.

    Every shard reads the input (cheap next to scoring) and scores its own chunks, so shards
    need no pre-split copy of the input and stay balanced whatever the row lengths.
    """
    for index, chunk in enumerate(chunks):
        if index % shards == shard:
            yield chunk


def join_shards(parts: list[Path], sink) -> int:
    """Write the scored chunks of ``parts`` (one Parquet row group per chunk) to ``sink`` in
    input order: chunk k is row group k // len(parts) of part k % len(parts)."""
    import pyarrow.parquet as pq

    files = [pq.ParquetFile(part) for part in parts]
    groups = [f.num_row_groups for f in files]
    total = sum(groups)
    for shard, count in enumerate(groups):
        expected = len(range(shard, total, len(parts)))
        if count != expected:
            raise ValueError(f"shard {parts[shard]} holds {count} chunks, expected {expected}: "
                             "the shards were not cut from the same input; delete them")
    rows = 0
    for index in range(total):
        table = files[index % len(parts)].read_row_group(index // len(parts))
        sink.write(table.select(OUTPUT_COLUMNS))
        rows += len(table)
    sink.close()
    return rows
