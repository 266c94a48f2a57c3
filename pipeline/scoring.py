"""Batch scoring: stream messages through the served signature, keep every row in order.

The input is read in chunks and the output written chunk by chunk, so memory stays flat
whatever the input size. Every input row appears in the output, in input order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

ScoreFunction = Callable[[list[str]], "tuple[np.ndarray, np.ndarray]"]
OUTPUT_COLUMNS = ["id", "text", "spam_probability", "label", "model_version"]


class BatchInputError(ValueError):
    """The batch input file cannot be scored as it is."""


def read_messages(path: Path | str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield ``id``/``text`` chunks of a CSV (``text`` column, optional ``id``) or of a plain
    text file (one message per line; ids are 1-based line numbers)."""
    path = Path(path)
    if not path.is_file():
        raise BatchInputError(f"batch input {path} does not exist")
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path, chunk_rows)
    else:
        yield from _read_lines(path, chunk_rows)


def _read_csv(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                             chunksize=chunk_rows, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise BatchInputError(f"batch input {path} is empty: expected a header with a "
                              "'text' column") from None
    row = 0
    for chunk in reader:
        if "text" not in chunk.columns:
            raise BatchInputError(f"batch input {path} has no 'text' column (columns: "
                                  f"{list(chunk.columns)}); name the message column 'text'")
        ids = chunk["id"] if "id" in chunk.columns else pd.Series(
            np.arange(row + 1, row + len(chunk) + 1).astype(str), index=chunk.index)
        row += len(chunk)
        yield pd.DataFrame({"id": ids.to_numpy(), "text": chunk["text"].to_numpy()})


def _read_lines(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    with open(path, encoding="utf-8", newline="") as handle:
        texts: list[str] = []
        first_id = 1
        for line in handle:
            texts.append(line.rstrip("\n").rstrip("\r"))
            if len(texts) == chunk_rows:
                yield _lines_frame(texts, first_id)
                first_id += len(texts)
                texts = []
        if texts:
            yield _lines_frame(texts, first_id)


def _lines_frame(texts: list[str], first_id: int) -> pd.DataFrame:
    ids = np.arange(first_id, first_id + len(texts)).astype(str)
    return pd.DataFrame({"id": ids, "text": texts})


def score_texts(texts: list[str], score: ScoreFunction, batch_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Score in batches of similar length (less padding), then restore input order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    probabilities = np.empty(len(texts), dtype=np.float32)
    labels = np.empty(len(texts), dtype=object)
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        batch_probabilities, batch_labels = score([texts[i] for i in rows])
        probabilities[rows] = batch_probabilities
        labels[rows] = batch_labels
    return probabilities, labels


def score_messages(messages: Iterable[pd.DataFrame], destination, score: ScoreFunction,
                   model_version: int, batch_size: int,
                   on_progress: Callable[[int], None] | None = None) -> int:
    """Score every ``id``/``text`` chunk of ``messages``; write CSV rows to ``destination``.

    Returns the number of rows written, which always equals the number of rows read.
    """
    destination.write(",".join(OUTPUT_COLUMNS) + "\n")
    rows = 0
    for chunk in messages:
        probabilities, labels = score_texts(chunk["text"].tolist(), score, batch_size)
        chunk["spam_probability"] = probabilities  # float32: written in its shortest exact form
        chunk["label"] = labels
        chunk["model_version"] = model_version
        chunk[OUTPUT_COLUMNS].to_csv(destination, header=False, index=False,
                                     lineterminator="\n")
        rows += len(chunk)
        if on_progress:
            on_progress(rows)
    return rows
