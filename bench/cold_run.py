"""A cold run of the whole chain on the real corpus, in an empty outputs folder: download,
vocabulary, training, export, smoke test and gate, promotion, scoring of the test split.

    .venv/bin/python bench/cold_run.py [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import shutil

import harness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for repeat in range(args.repeats):
        outputs = harness.RESULTS / f"cold-{repeat}"
        shutil.rmtree(outputs, ignore_errors=True)
        seconds, peak = harness.measured_run(harness.luigi_command("BatchScore",
                                                                   outputs=outputs))
        [metrics_file] = (outputs / "training").glob("*/metrics.json")
        test = json.loads(metrics_file.read_text())["test"]
        rows.append([repeat + 1, f"{seconds:.1f}", f"{peak:,.0f}", f"{test['accuracy']:.4f}",
                     f"{test['mcc']:.4f}"])
        shutil.rmtree(outputs)
    harness.publish("cold_run", harness.markdown_table(
        ["run", "wall s", "peak RSS MB", "test accuracy", "test MCC"], rows))


if __name__ == "__main__":
    main()
