"""What cron does most nights before new data arrives: run a complete chain again. Luigi
checks complete() for every task without importing TensorFlow.

    .venv/bin/python bench/noop.py [--repeats 5]
"""
from __future__ import annotations

import argparse

import harness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    harness.ensure_model()
    command = harness.luigi_command("BatchScore", "--date", "2003-01-01")
    harness.measured_run(command)  # makes the chain complete, scores included
    runs = [harness.measured_run(command) for _ in range(args.repeats)]
    seconds = [s for s, _ in runs]
    harness.publish("noop", harness.markdown_table(
        ["run", "wall s (median)", "min", "max", "peak RSS MB"],
        [[f"no-op BatchScore chain, {args.repeats} runs", f"{harness.median(seconds):.2f}",
          f"{min(seconds):.2f}", f"{max(seconds):.2f}",
          f"{harness.median([p for _, p in runs]):.0f}"]]))


if __name__ == "__main__":
    main()
