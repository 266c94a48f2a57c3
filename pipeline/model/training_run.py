"""One training run: encode the splits, train, pick the threshold on validation, measure,
and write the model, history and metrics into a folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data import corpus
from pipeline.model import metrics
from pipeline.model import teacher
from pipeline.data import text
from pipeline.data import vocabulary
from pipeline.data.evaluation_sets import EvaluationSet
from pipeline.model.report import ScoredSet, write_report
from pipeline.model.network import (EpochCallback, ModelConfig, predict_probabilities,
                                    train_classifier, weights_checksum)


def encoded_inputs(texts: list[str], words: list[str], config: ModelConfig):
    """What the model of ``config`` takes for ``texts`` (see ``build_classifier``)."""
    inputs = text.encode_inputs(texts, words, config.max_length, config.char_gram_buckets,
                                config.word_grams)
    return inputs if config.char_gram_buckets else inputs["token_ids"]


def fit_and_measure(table: pd.DataFrame, words: list[str], config: ModelConfig,
                    max_ham_blocked: float, min_threshold: float, min_source_ham: int = 100,
                    on_epoch: EpochCallback | None = None,
                    evaluation_sets: list[EvaluationSet] = (),
                    tensorboard_dir: Path | None = None, measure_baseline: bool = True) -> dict:
    """Train on the train split, choose the threshold on validation (the strictest of the
    corpus and each extra source with at least ``min_source_ham`` validation ham; see
    ``metrics.threshold_for_every_source``), measure validation, test and each evaluation
    set at that threshold. Returns the model, its history, the
    metrics, and the scored test split and evaluation sets (``ScoredSet``). With
    ``tensorboard_dir``, training writes TensorBoard logs there. With ``teacher_weight``,
    the SVM teacher scores the training split out of fold first (:mod:`pipeline.model.teacher`;
    never the validation or test split). With ``measure_baseline``, the TF-IDF SVM alone
    is measured on the same splits too (``metrics["baseline"]``, for the model card)."""
    encoded = {}
    for name in ("train", "validation", "test"):
        texts, labels = corpus.texts_and_labels(table, name)
        encoded[name] = (encoded_inputs(texts, words, config), labels, texts)
    teacher_scores = (teacher.out_of_fold_scores(encoded["train"][2], encoded["train"][1],
                                                 config.teacher_squash)
                      if config.teacher_weight > 0 else None)
    model, history = train_classifier(
        encoded["train"][0], encoded["train"][1], encoded["validation"][0],
        encoded["validation"][1], len(words) + text.RESERVED_TOKENS, config, on_epoch,
        tensorboard_dir, teacher_scores=teacher_scores)
    probabilities = {name: predict_probabilities(model, ids)
                     for name, (ids, _, _) in encoded.items() if name != "train"}
    threshold, set_by, by_source = _threshold_for_every_source(
        table, encoded["validation"][1], probabilities["validation"], max_ham_blocked,
        min_threshold, min_source_ham)
    scored = [ScoredSet("test", encoded["test"][2], encoded["test"][1], probabilities["test"])]
    for held_out in evaluation_sets:
        scored.append(ScoredSet(held_out.name, held_out.texts, held_out.labels,
                                predict_probabilities(model, encoded_inputs(
                                    held_out.texts, words, config))))
    result = {
        "threshold": threshold,
        "threshold_rule": {"max_ham_blocked_on_validation": max_ham_blocked,
                           "min_threshold": min_threshold,
                           "min_source_ham": min_source_ham,
                           "set_by": set_by,
                           "validation_by_source": by_source},
        "validation": metrics.classification_metrics(
            encoded["validation"][1], probabilities["validation"], threshold),
        "test": metrics.classification_metrics(
            encoded["test"][1], probabilities["test"], threshold),
        "test_by_source": _metrics_by_source(table, encoded["test"][1], probabilities["test"],
                                             threshold),
        "epochs_trained": len(history),
        "weights_sha256": weights_checksum(model),
        "config": config.as_dict(),
        "evaluation_sets": {
            held_out.name: {**held_out.describe(), **metrics.classification_metrics(
                scored_set.labels, scored_set.probabilities, threshold)}
            for held_out, scored_set in zip(evaluation_sets, scored[1:])},
        "baseline": (_svm_baseline(encoded, evaluation_sets, max_ham_blocked, min_threshold)
                     if measure_baseline else None),
    }
    return {"model": model, "history": history, "metrics": result, "scored": scored}


def _svm_baseline(encoded: dict, evaluation_sets: list[EvaluationSet], max_ham_blocked: float,
                  min_threshold: float) -> dict | None:
    """The TF-IDF SVM on the same splits and evaluation sets (model cards compare with
    it); ``None`` when the training split lacks one of the labels."""
    (_, train_labels, train_texts), (_, labels, texts) = encoded["train"], encoded["validation"]
    if len(set(np.asarray(train_labels).tolist())) < 2:
        return None
    measured = {"test": (encoded["test"][2], encoded["test"][1]),
                **{held.name: (held.texts, held.labels) for held in evaluation_sets}}
    return teacher.svm_baseline((train_texts, train_labels), (texts, labels), measured,
                                max_ham_blocked, min_threshold)


def _threshold_for_every_source(table: pd.DataFrame, labels: np.ndarray,
                                probabilities: np.ndarray, max_ham_blocked: float,
                                min_threshold: float, min_source_ham: int
                                ) -> tuple[float, str, dict]:
    """:func:`metrics.threshold_for_every_source` on the validation part of each source
    of the corpus table (the corpus first)."""
    sources = table.loc[table["split"] == "validation", "source"].to_numpy()
    validation = {source: (labels[sources == source], probabilities[sources == source])
                  for source in corpus.sources_of(table)}
    return metrics.threshold_for_every_source(validation, max_ham_blocked, min_threshold,
                                              min_source_ham)


def _metrics_by_source(table: pd.DataFrame, labels: np.ndarray, probabilities: np.ndarray,
                       threshold: float) -> dict:
    """Test metrics of each source of the corpus table (the corpus, then extra sources)."""
    sources = table.loc[table["split"] == "test", "source"].to_numpy()
    return {source: metrics.classification_metrics(
                labels[sources == source], probabilities[sources == source], threshold)
            for source in corpus.sources_of(table)}


def train_and_evaluate(table: pd.DataFrame, vocabulary_path: Path, config: ModelConfig,
                       max_ham_blocked: float, min_threshold: float, folder: Path,
                       on_epoch: EpochCallback | None = None,
                       evaluation_sets: list[EvaluationSet] = (),
                       min_source_ham: int = 100) -> dict:
    """:func:`fit_and_measure`, then write ``model.keras``, ``history.json``,
    ``metrics.json`` and ``report/report.html`` into ``folder`` (and TensorBoard logs,
    written while training, into ``tensorboard/``); returns the metrics."""
    words = vocabulary.read_vocabulary(vocabulary_path)
    run = fit_and_measure(table, words, config, max_ham_blocked, min_threshold,
                          min_source_ham, on_epoch, evaluation_sets,
                          tensorboard_dir=folder / "tensorboard")
    run["model"].save(folder / "model.keras")
    (folder / "history.json").write_text(json.dumps(run["history"], indent=2) + "\n")
    (folder / "metrics.json").write_text(json.dumps(run["metrics"], indent=2) + "\n")
    write_report(folder / "report", run["history"], run["metrics"], run["scored"])
    return run["metrics"]
