"""The review queue: which of a day's scored messages an operator should label.

Most of a day's messages are scored with confidence and teach the model nothing new.
The queue holds the messages closest to the decision threshold, where a label helps the
next model most, plus a small random sample of confident ones, so that confident
mistakes (a new kind of spam scored as plainly ham) are seen too. Each text appears once.
A labelled copy of the queue is an extra training source as it is
(``[DownloadCorpus] extra_sources``); messages already labelled (in the training corpus or
an extra source) are left out, for a second label teaches nothing.

People open the queue file in a spreadsheet, so :func:`write_review_file` neutralises
cells a spreadsheet would evaluate as formulas (``pipeline.data.spreadsheet_cells``); the
labelled-file reader restores them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from pipeline.data.spreadsheet_cells import write_spreadsheet_csv

QUEUE_COLUMNS = ["id", "text", "spam_probability", "model_version", "reason", "label"]
NEAR_THRESHOLD = "near threshold"
CONFIDENT_SAMPLE = "confident sample"


class EmptyScoresError(ValueError):
    """There is nothing to review."""


@dataclass(frozen=True)
class QueuePolicy:
    """Settings of ``[ReviewQueue]`` in luigi.cfg."""

    max_rows: int = 200
    confident_rows: int = 20           # of max_rows, sampled among confident messages
    confident_probability: float = 0.95  # confident: spam or ham probability at least this
    seed: int = 0


def review_queue(chunks: Iterable[pd.DataFrame], threshold: float, policy: QueuePolicy,
                 labelled_texts: frozenset[str] | set[str] = frozenset()) -> pd.DataFrame:
    """Choose the messages to label from scored chunks (``batch_files.read_scores``).

    Reads chunk by chunk and keeps only the best candidates, so memory does not grow with
    the day. Closeness is measured in log-odds, so 0.9 vs 0.5 and 0.1 vs 0.5 are as far.
    Messages whose text is in ``labelled_texts`` (already in the training corpus or an
    extra source) are left out.
    """
    rng = np.random.default_rng(policy.seed)
    near = pd.DataFrame()
    confident = pd.DataFrame()
    rows = 0
    for chunk in chunks:
        rows += len(chunk)
        if labelled_texts:
            chunk = chunk[~chunk["text"].isin(labelled_texts)]
        p = chunk["spam_probability"].to_numpy(np.float64)
        chunk = chunk.assign(distance=np.abs(_log_odds(p) - _log_odds(np.float64(threshold))),
                             draw=rng.random(len(chunk)))
        sure = np.maximum(p, 1 - p) >= policy.confident_probability
        near = _best(pd.concat([near, chunk[~sure]]), "distance", policy.max_rows)
        confident = _best(pd.concat([confident, chunk[sure]]), "draw", policy.confident_rows)
    if rows == 0:
        raise EmptyScoresError("the scores file has no rows: there is nothing to review")
    sample = confident[~confident["text"].isin(near["text"])]
    near = near.head(policy.max_rows - len(sample))
    queue = pd.concat([near.assign(reason=NEAR_THRESHOLD),
                       sample.assign(reason=CONFIDENT_SAMPLE)], ignore_index=True)
    return queue.assign(label="")[QUEUE_COLUMNS]


def write_review_file(queue: pd.DataFrame, path: Path | str) -> None:
    """Write the queue as UTF-8 CSV with a header, its ``id`` and ``text`` cells
    neutralised against formula evaluation (``spreadsheet_cells.write_spreadsheet_csv``)."""
    write_spreadsheet_csv(queue, path, ("id", "text"))


def _best(frame: pd.DataFrame, key: str, keep: int) -> pd.DataFrame:
    """The ``keep`` rows with the smallest ``key``, one per text."""
    if frame.empty:
        return frame
    frame = frame.sort_values(key, kind="stable").drop_duplicates("text")
    return frame.head(keep)


def _log_odds(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)
