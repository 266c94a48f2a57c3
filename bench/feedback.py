"""What labelled feedback does for the model: retrain with one labelled half of
super_sms_legacy as an extra source ([DownloadCorpus] extra_sources) and measure the
other half, against the default model measured on the same half.

A measurement only: the default configuration never trains on ../shared/data/sms-ood-dev/.
The halves are stratified by label (seed 0). Both models are trained with the settings of
luigi.cfg into bench/results/outputs, with the other half and mishra_soni_2022 as
evaluation sets (never trained on).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (OUTPUTS, REPO, RESULTS, luigi_command, markdown_table,  # noqa: E402
                     measured_run, publish, use_repository_config)

OOD = REPO.parent / "shared" / "data" / "sms-ood-dev"


def halves(folder: Path) -> tuple[Path, Path]:
    """super_sms_legacy split in two halves, stratified by label, as label/text CSVs."""
    table = pd.read_csv(OOD / "super_sms_legacy.tsv", sep="\t", names=["label", "text"],
                        quoting=3, keep_default_na=False)
    rng = np.random.default_rng(0)
    first = np.zeros(len(table), bool)
    for label in ("ham", "spam"):
        rows = np.flatnonzero(table.label.to_numpy() == label)
        first[rng.permutation(rows)[: len(rows) // 2]] = True
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "super_labelled_half.csv", folder / "super_other_half.csv"
    table[first].to_csv(paths[0], index=False)
    table[~first].to_csv(paths[1], index=False)
    return paths


def train(*options: str) -> tuple[dict, float]:
    """Train with ``options`` (``--Section-name value`` pairs); return its metrics.json
    and the wall time of the run."""
    seconds, _ = measured_run(luigi_command("TrainRNN", *options))
    return json.loads((training_folder(options) / "metrics.json").read_text()), seconds


def training_folder(options: tuple[str, ...]) -> Path:
    """The folder TrainRNN wrote with ``options``: luigi.cfg plus the options, read in this
    process as the run read them."""
    import luigi.configuration
    from luigi.task_register import Register

    use_repository_config()
    config = luigi.configuration.get_config()
    settings = [("pipeline", "outputs_root", str(OUTPUTS))] + [
        (option[2:].split("-", 1)[0], option[2:].split("-", 1)[1].replace("-", "_"), value)
        for option, value in zip(options[::2], options[1::2])]
    for section, name, value in settings:
        config.set(section, name, value)
    Register.clear_instance_cache()
    from pipeline import tasks

    try:
        return tasks.TrainRNN().output_folder()
    finally:
        for section, name, _ in settings:
            config.remove_option(section, name)


def main() -> None:
    labelled, other = halves(RESULTS / "feedback")
    evaluation = f"{other},{OOD / 'mishra_soni_2022.tsv'}"
    rows = []
    for name, options in [
            ("default (corpus only)", ["--TrainRNN-evaluation-sets", evaluation]),
            ("+ labelled half of super_sms_legacy",
             ["--TrainRNN-evaluation-sets", evaluation,
              "--DownloadCorpus-extra-sources", str(labelled)])]:
        result, seconds = train(*options)
        corpus_test = result["test_by_source"]["SMSSpamCollection"]
        held, mishra = (result["evaluation_sets"]["super_other_half"],
                        result["evaluation_sets"]["mishra_soni_2022"])
        rows.append([name, f"{corpus_test['mcc']:.4f}", f"{corpus_test['roc_auc']:.4f}",
                     f"{corpus_test['ham_blocked']:.2%}", f"{held['roc_auc']:.4f}",
                     f"{held['spam_caught']:.1%}", f"{held['ham_blocked']:.2%}",
                     f"{mishra['roc_auc']:.4f}", f"{result['threshold']:.3f}",
                     f"{seconds:.0f}"])
    publish("feedback", "\n".join([
        f"Retraining with labelled feedback: half of super_sms_legacy ({labelled.name}) as "
        f"an extra source, measured on the other half ({other.name}); seed 0, luigi.cfg "
        "settings otherwise.", "",
        markdown_table(["model", "corpus test MCC", "corpus test ROC AUC",
                        "corpus test ham blocked", "other half ROC AUC",
                        "other half spam caught", "other half ham blocked",
                        "mishra_soni_2022 ROC AUC", "threshold", "training run s"], rows)]))


if __name__ == "__main__":
    main()
