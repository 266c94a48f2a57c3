"""Peak memory of BatchScore: a 2,000,000-message file against a 200,000-message file
(streamed in chunks and written incrementally, so the peak should not grow with input).

    .venv/bin/python bench/memory.py [--repeats 1]
"""
from __future__ import annotations

import argparse

import harness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 2_000_000])
    args = parser.parse_args()
    harness.ensure_model()
    results = {size: [] for size in args.sizes}
    for repeat in range(args.repeats):
        for size in args.sizes:
            seconds, peak = harness.score_file(harness.sampled_input(size),
                                               f"2002-01-{repeat + 1:02d}")
            results[size].append((seconds, peak))
    base = harness.median([p for _, p in results[args.sizes[0]]])
    rows = []
    for size in args.sizes:
        seconds = harness.median([s for s, _ in results[size]])
        peak = harness.median([p for _, p in results[size]])
        rows.append([f"{size:,}", f"{seconds:.1f}", f"{size / seconds:,.0f}", f"{peak:,.0f}",
                     f"{peak / base:.3f}"])
    harness.publish("memory", harness.markdown_table(
        ["messages", "wall s", "messages/s (incl. start-up)", "peak RSS MB",
         f"peak / peak at {args.sizes[0]:,}"], rows))


if __name__ == "__main__":
    main()
