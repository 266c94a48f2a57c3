"""``spam-ham-versions diff`` against ``BatchScore`` on the same file, end to end (process
start, TensorFlow, reading, scoring, writing), runs interleaved: diff scores every
message with two versions and writes only the flips, BatchScore with one version and
writes every row. The issue's target: diff within twice BatchScore's time on 100,000
messages. A second, larger file shows whether diff's memory grows with the input.

    .venv/bin/python bench/shadow.py [--rows 100000] [--large 400000] [--repeats 3]

Needs two published versions in bench/results/outputs: the configured model, and the
same trained with another seed (trained here the first time).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import harness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    harness.ensure_model()
    from pipeline.serving import model_base

    base = harness.OUTPUTS / "serving" / "spam_ham"
    if len(model_base.serving_versions(base)) < 2:
        harness.measured_run(harness.luigi_command(
            "PromoteVersion", "--TrainRNN-seed", "1", "--PromoteVersion-force"))
    a, b = model_base.serving_versions(base)[-2:]
    config = harness.RESULTS / "shadow.cfg"
    config.write_text(f"[pipeline]\noutputs_root = {harness.OUTPUTS}\n")

    def diff(path: Path) -> list[str]:
        return [str(Path(sys.executable).with_name("spam-ham-versions")), "--config",
                str(config), "diff", str(a), str(b), "--input", str(path), "--output",
                str(harness.RESULTS / f"shadow-{path.stem}")]

    small = harness.sampled_input(args.rows)
    scored, diffed = [], []
    for repeat in range(args.repeats):  # interleaved, so both see the same machine
        scored.append(harness.score_file(small, f"2002-01-{repeat + 1:02d}"))
        diffed.append(harness.measured_run(diff(small)))
    large = harness.sampled_input(args.large)
    large_diff = harness.measured_run(diff(large))
    summary = json.loads((harness.RESULTS / f"shadow-{small.stem}" / "shadow.json").read_text())

    score_s = harness.median([s for s, _ in scored])
    diff_s = harness.median([s for s, _ in diffed])
    rows = [
        [f"BatchScore, version {b}, {args.rows:,} rows", f"{score_s:.2f}",
         f"{min(s for s, _ in scored):.2f}-{max(s for s, _ in scored):.2f}",
         f"{harness.median([m for _, m in scored]):.0f}", "1.00x"],
        [f"diff {a} {b}, {args.rows:,} rows", f"{diff_s:.2f}",
         f"{min(s for s, _ in diffed):.2f}-{max(s for s, _ in diffed):.2f}",
         f"{harness.median([m for _, m in diffed]):.0f}", f"{diff_s / score_s:.2f}x"],
        [f"diff {a} {b}, {args.large:,} rows (once)", f"{large_diff[0]:.2f}", "-",
         f"{large_diff[1]:.0f}", "-"],
    ]
    text = "\n".join([
        harness.markdown_table(["run", "wall s (median)", "range", "peak RSS MB",
                                "time vs BatchScore"], rows),
        "",
        f"Target: diff within 2x BatchScore's time on {args.rows:,} messages: "
        f"{'met' if diff_s <= 2 * score_s else 'missed'} ({diff_s / score_s:.2f}x). "
        f"Versions {a} -> {b} (another seed) on that file: "
        f"{summary['newly_blocked']['count']:,} newly blocked, "
        f"{summary['newly_passed']['count']:,} newly passed, PSI {summary['psi']:.4f}.",
    ])
    harness.publish("shadow", text)
    harness.record_result("shadow", text)


if __name__ == "__main__":
    main()
