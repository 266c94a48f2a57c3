"""How MonitorScores' drift measures behave on days like the training data and on days of
other collections: the evidence for the thresholds in luigi.cfg ([MonitorScores]).

Trains the default model into bench/results/outputs if needed (the README's run), then
draws days of N messages without replacement, 20 per kind and size: from the corpus's
test split and validation split (what tomorrow looks like if nothing changed) and from
each collection of ../shared/data/sms-ood-dev/. Each day is scored through the live
version's signature and measured as MonitorScores measures it. Prints the median and the
extreme (max for the corpus's days, min for the others) of each measure, and how many
days each kind flags as drift with the configured thresholds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (OUTPUTS, REPO, corpus_url, ensure_model, markdown_table,  # noqa: E402
                     publish, use_repository_config)

OOD = REPO.parent / "shared" / "data" / "sms-ood-dev"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20, help="Days drawn per kind and size.")
    parser.add_argument("--sizes", default="200,500", help="Messages per day.")
    args = parser.parse_args()
    ensure_model()
    use_repository_config()
    import luigi.configuration

    config = luigi.configuration.get_config()
    config.set("pipeline", "outputs_root", str(OUTPUTS))  # as luigi_command() runs it
    config.set("DownloadCorpus", "url", corpus_url())
    from pipeline.serving import batching
    from pipeline.data import corpus
    from pipeline.serving import exported_model
    from pipeline.monitoring import drift
    from pipeline.serving import model_base
    from pipeline import tasks
    from pipeline.data import text

    base = OUTPUTS / "serving" / "spam_ham"
    version = model_base.live_version(base)
    signature = exported_model.ServingSignature(base / str(version))
    reference, words = exported_model.read_monitoring_reference(base / str(version))
    reference = drift.Reference.from_dict(reference)
    lookup = text.make_lookup(words)
    table = corpus.read_corpus_table(tasks.DownloadCorpus().output_folder() / "messages.csv")
    kinds = {"test split": table.loc[table.split == "test", "text"].tolist(),
             "validation split": table.loc[table.split == "validation", "text"].tolist()}
    for path in sorted(OOD.glob("*.tsv")):
        kinds[path.stem] = pd.read_csv(path, sep="\t", names=["label", "text"], quoting=3,
                                       keep_default_na=False)["text"].tolist()
    thresholds = tasks.MonitorScores().thresholds()
    rows = []
    rng = np.random.default_rng(0)
    for size in (int(s) for s in args.sizes.split(",")):
        for kind, texts in kinds.items():
            figures = []
            for _ in range(args.days):
                day = [texts[i] for i in rng.choice(len(texts), min(size, len(texts)),
                                                    replace=False)]
                probabilities, labels = batching.score_texts(day, signature, 1024)
                counts = text.token_statistics(day, lookup)
                figures.append(drift.day_summary(
                    probabilities.astype(np.float64), labels == "spam", counts["word_tokens"],
                    counts["oov_tokens"], counts["url_messages"], reference, thresholds))
            rows.append(_row(kind, size, figures))
    measures = ["psi", "oov_share", "url_share", "spam_share"]
    header = ["day drawn from", "N"] + [f"{m} median (extreme)" for m in measures] + [
        "days flagged"]
    publish("drift", "\n".join([
        f"Drift measures of days of N messages, {args.days} days per row, live version "
        f"{version}. Extreme: max for days of the corpus, min for other collections. "
        "Reference (its test split): " + ", ".join(
            f"{m} {getattr(reference, m):.3f}" for m in measures[1:]) + ".",
        f"Thresholds ([MonitorScores]): max_psi {thresholds.max_psi}, max_oov_share "
        f"{thresholds.max_oov_share}, max_url_share {thresholds.max_url_share}, "
        f"max_spam_share {thresholds.max_spam_share}, min_rows {thresholds.min_rows}.", "",
        markdown_table(header, rows)]))


def _row(kind: str, size: int, figures: list[dict]) -> list:
    in_distribution = kind.endswith("split")
    cells = [kind, size]
    for measure in ("psi", "oov_share", "url_share", "spam_share"):
        values = np.array([f[measure] for f in figures])
        extreme = values.max() if in_distribution else values.min()
        cells.append(f"{np.median(values):.3f} ({extreme:.3f})")
    cells.append(f"{sum(f['drift'] for f in figures)}/{len(figures)}")
    return cells


if __name__ == "__main__":
    main()
