"""BatchScore throughput on the default model, end to end (read, score, write), as the
marginal rate between a small and a large input so that start-up cancels; compared in the
same run with one message per signature call (the textbook client) and with a TF-IDF +
linear SVM pipeline (scikit-learn) predicting the same messages.

    .venv/bin/python bench/throughput.py [--small 20000] [--large 2000000] [--repeats 3] [--spark]

The large input is 2,000,000 rows so that scoring (about 12 s) outweighs the run-to-run
noise of start-up (about 4.5 s, +-0.3 s); at 200,000 rows the two were of a size.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import harness


def batch_score_seconds(rows: int, date: str, *options: str) -> float:
    return harness.score_file(harness.sampled_input(rows), date, *options)[0]


def marginal_rate(small_rows: int, small: list[float], large_rows: int, large: list[float]
                  ) -> float:
    return (large_rows - small_rows) / (harness.median(large) - harness.median(small))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single-calls", type=int, default=2_000)
    parser.add_argument("--spark", action="store_true",
                        help="add --engine spark rows: local[2] and a standalone cluster of "
                             "two one-core workers (needs requirements-spark.txt and java)")
    parser.add_argument("--spark-small", type=int, default=200_000)
    parser.add_argument("--svm-rows", type=int, default=200_000,
                        help="messages the SVM predicts per repeat (its rate does not depend "
                             "on the count; 2M would need 5 GB for its features)")
    args = parser.parse_args()
    harness.ensure_model()

    small, large, serial_small, serial_large = [], [], [], []
    serial = ("--BatchScore-concurrent-batches", "1")
    for repeat in range(args.repeats):  # interleaved; a new date makes each run real work
        small.append(batch_score_seconds(args.small, f"2001-01-{repeat + 1:02d}"))
        large.append(batch_score_seconds(args.large, f"2001-02-{repeat + 1:02d}"))
        serial_small.append(batch_score_seconds(args.small, f"2001-03-{repeat + 1:02d}", *serial))
        serial_large.append(batch_score_seconds(args.large, f"2001-04-{repeat + 1:02d}", *serial))
    marginal = marginal_rate(args.small, small, args.large, large)
    serial_rate = marginal_rate(args.small, serial_small, args.large, serial_large)

    from pipeline.serving import exported_model
    from pipeline.serving import model_base
    base = harness.OUTPUTS / "serving" / "spam_ham"
    signature = exported_model.ServingSignature(base / str(model_base.live_version(base)))
    texts = harness.corpus_texts()
    messages = [texts[i % len(texts)] for i in range(args.single_calls)]
    signature(messages[:10])
    single = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for message in messages:
            signature([message])
        single.append(args.single_calls / (time.perf_counter() - started))
    single_rate = harness.median(single)

    svm_rate = svm_messages_per_second(args.svm_rows, args.repeats)
    harness.use_repository_config()
    from pipeline import tasks
    concurrent = tasks.BatchScore().concurrent_batches
    rows = [
        ["BatchScore, end to end (marginal, "
         f"{args.small:,} -> {args.large:,} rows), concurrent_batches = {concurrent}",
         f"{marginal:,.0f}", "1.0x"],
        ["the same, concurrent_batches = 1 (one batch in the signature at a time)",
         f"{serial_rate:,.0f}", f"{marginal / serial_rate:.2f}x (concurrent / one)"],
        ["one message per signature call", f"{single_rate:,.0f}",
         f"{marginal / single_rate:,.0f}x slower"],
        [f"TF-IDF + linear SVM (scikit-learn), predict only ({args.svm_rows:,} rows)",
         f"{svm_rate:,.0f}",
         f"{marginal / svm_rate:.2f}x (ours / SVM)"],
    ]
    if args.spark:
        rows += spark_rows(args, marginal)
    detail = (f"\nBatchScore wall time, median of {args.repeats}: {harness.median(small):.1f} s "
              f"for {args.small:,} rows, {harness.median(large):.1f} s for {args.large:,} rows "
              f"(runs: small {[round(s, 1) for s in small]}, large {[round(s, 1) for s in large]}).")
    harness.publish("throughput", harness.markdown_table(
        ["method", "messages/s (median)", "ratio"], rows) + "\n" + detail)


def spark_rows(args, local_marginal: float) -> list[list[str]]:
    """Marginal rates of --engine spark on local[2] and on a two-worker standalone
    cluster, next to the local engine's of the same run."""
    spark = ("--BatchScore-engine", "spark")
    runs: dict[str, tuple[list[float], list[float]]] = {"local[2]": ([], []), "cluster": ([], [])}
    sys.path.insert(0, str(harness.REPO / "tests"))  # a test helper, not the product's
    from spark_cluster import standalone_cluster

    with standalone_cluster(harness.RESULTS / "spark-cluster", workers=2, cores=1) as (
            master, _):
        for repeat in range(args.repeats):
            for name, options in (("local[2]", spark),
                                  ("cluster", (*spark, "--spark-master", master))):
                month = 5 if name == "local[2]" else 7
                small, large = runs[name]
                small.append(batch_score_seconds(args.spark_small,
                                                 f"2001-{month:02d}-{repeat + 1:02d}", *options))
                large.append(batch_score_seconds(args.large,
                                                 f"2001-{month + 1:02d}-{repeat + 1:02d}",
                                                 *options))
    rows = []
    for name, label in (("local[2]", "--engine spark, master local[2]"),
                        ("cluster", "--engine spark, standalone cluster: 2 workers x 1 core")):
        small, large = runs[name]
        rate = marginal_rate(args.spark_small, small, args.large, large)
        rows.append([f"{label} (marginal, {args.spark_small:,} -> {args.large:,} rows; "
                     f"median {harness.median(small):.1f} s and {harness.median(large):.1f} s)",
                     f"{rate:,.0f}", f"{rate / local_marginal:.2f}x (Spark / local engine)"])
    return rows


def svm_messages_per_second(rows: int, repeats: int) -> float:
    import pandas as pd

    from pipeline.data import corpus
    from pipeline.model import teacher
    member = corpus.read_corpus_member(Path(harness.SHARED_ZIP).read_bytes())
    table, _ = corpus.build_corpus_table(member, 0, 0.01)
    train = table[table.split == "train"]
    model = teacher.svm_teacher().fit(train["text"], train["label"] == "spam")
    texts = pd.read_csv(harness.sampled_input(rows), keep_default_na=False)["text"].tolist()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    return float(np.median(rates))


if __name__ == "__main__":
    main()
