"""Run a serving signature over many texts in batches of similar length (less padding),
one or several batches at a time, and give the results back in input order.

Used wherever an export is scored in this process: the gate's measurements, the
monitoring reference, the local and Spark scoring engines.
"""
from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Callable

import numpy as np

ScoreFunction = Callable[[list[str]], "tuple[np.ndarray, np.ndarray]"]
def score_texts(texts: list[str], score: ScoreFunction, batch_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Score one batch at a time, in batches of similar length (less padding); returns
    probabilities and labels in input order. ``score_messages`` runs several at once."""
    with ThreadPoolExecutor(1, "score") as one_at_a_time:
        return ScoredBatches(texts, score, batch_size, one_at_a_time).result()


class ScoredBatches:
    """The texts cut into batches of similar length (less padding), each submitted to
    ``pool``; ``result()`` waits for them and returns probabilities and labels in input
    order. With several threads in the pool, several batches are in the signature at once:
    TensorFlow runs them outside the GIL, and small recurrent steps leave cores idle that
    a second batch fills."""

    def __init__(self, texts: list[str], score: ScoreFunction, batch_size: int,
                 pool: Executor):
        order = np.argsort([len(t) for t in texts], kind="stable")
        self.size = len(texts)
        self.batches = [order[start:start + batch_size]
                        for start in range(0, len(texts), batch_size)]
        self.futures = [pool.submit(lambda rows: score([texts[i] for i in rows]), rows)
                        for rows in self.batches]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        results = [future.result() for future in self.futures]
        if not results:
            return np.empty(0, np.float32), np.empty(0, str)
        order = np.concatenate(self.batches)
        probabilities = np.empty(self.size, np.float32)
        probabilities[order] = np.concatenate([p for p, _ in results])
        batch_labels = np.concatenate([np.asarray(labels) for _, labels in results])
        labels = np.empty_like(batch_labels)
        labels[order] = batch_labels
        return probabilities, labels


def one_tensorflow_thread_per_batch() -> bool:
    """Run each batch's TensorFlow kernels on one thread, so that concurrent batches share
    the cores instead of each asking for all of them. TensorFlow accepts this only before
    it starts in the process (a run that has just trained keeps its threads); returns
    whether it took effect."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:
        return False
    return True
