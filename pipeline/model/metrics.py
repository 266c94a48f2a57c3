"""Spam-filter metrics from labels and probabilities (numpy only).

"Spam caught" is recall on spam; "ham blocked" is the share of ham labelled spam,
the costly error: a user loses a real message.
"""
from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, int]:
    y_true = np.asarray(y_true, bool)
    y_pred = np.asarray(y_pred, bool)
    return {
        "ham_as_ham": int(np.sum(~y_true & ~y_pred)),
        "ham_as_spam": int(np.sum(~y_true & y_pred)),
        "spam_as_ham": int(np.sum(y_true & ~y_pred)),
        "spam_as_spam": int(np.sum(y_true & y_pred)),
    }


def matthews_correlation(c: dict[str, int]) -> float:
    tp, tn, fp, fn = c["spam_as_spam"], c["ham_as_ham"], c["ham_as_spam"], c["spam_as_ham"]
    denominator = np.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    y_true = np.asarray(y_true, bool)
    scores = np.asarray(scores, float)
    positives, negatives = y_true.sum(), (~y_true).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[y_true].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _counts_by_threshold(y_true: np.ndarray, scores: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spam and ham at or above each distinct score, highest score first."""
    y_true = np.asarray(y_true, bool)
    scores = np.asarray(scores, float)
    if scores.size == 0:  # e.g. a small extra source with no validation rows
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y_true[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    return np.cumsum(t)[last_of_tie], np.cumsum(~t)[last_of_tie], s[last_of_tie]


def precision_recall_curve(y_true: np.ndarray, scores: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds, one point per distinct score (highest first)."""
    tp, fp, thresholds = _counts_by_threshold(y_true, scores)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(int(np.sum(y_true)), 1)
    return precision, recall, thresholds


def roc_curve(y_true: np.ndarray, scores: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds (highest threshold first)."""
    tp, fp, thresholds = _counts_by_threshold(y_true, scores)
    positives = int(np.sum(y_true))
    negatives = len(np.asarray(y_true)) - positives
    tpr = np.r_[0.0, tp / max(positives, 1)]
    fpr = np.r_[0.0, fp / max(negatives, 1)]
    return fpr, tpr, np.r_[np.inf, thresholds]


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (step-wise)."""
    precision, recall, _ = precision_recall_curve(y_true, scores)
    previous_recall = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - previous_recall) * precision))


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray,
                           threshold: float) -> dict:
    """Every figure a spam filter is judged by, at ``threshold``."""
    y_true = np.asarray(y_true, bool)
    probabilities = np.asarray(probabilities, float)
    c = confusion(y_true, probabilities >= threshold)
    n_ham = c["ham_as_ham"] + c["ham_as_spam"]
    n_spam = c["spam_as_spam"] + c["spam_as_ham"]
    return {
        "messages": int(len(y_true)),
        "threshold": float(threshold),
        "accuracy": (c["ham_as_ham"] + c["spam_as_spam"]) / max(len(y_true), 1),
        "mcc": matthews_correlation(c),
        "spam_caught": c["spam_as_spam"] / n_spam if n_spam else float("nan"),
        "ham_blocked": c["ham_as_spam"] / n_ham if n_ham else float("nan"),
        "roc_auc": roc_auc(y_true, probabilities),
        "pr_auc": average_precision(y_true, probabilities),
        "confusion_matrix": c,
    }


def threshold_for_ham_blocked(y_true: np.ndarray, probabilities: np.ndarray,
                              max_ham_blocked: float, min_threshold: float = 0.5) -> float:
    """The lowest threshold, not below ``min_threshold``, whose share of ham labelled spam
    stays at or below ``max_ham_blocked``.

    Lowest, so as much spam as possible is caught within the allowed ham loss; the floor
    keeps a validation split where every ham scores low from pulling the threshold down
    to where unseen ham would be blocked. Chosen on the validation split only.
    """
    y_true = np.asarray(y_true, bool)
    ham_scores = np.sort(np.asarray(probabilities, float)[~y_true])[::-1]
    allowed = int(np.floor(max_ham_blocked * len(ham_scores) + 1e-9))
    if allowed >= len(ham_scores):
        return float(min_threshold)
    # Every ham scoring at or above the threshold is blocked: sit just above the
    # (allowed+1)-th highest ham score.
    return float(max(min(np.nextafter(ham_scores[allowed], 1.0), 1.0), min_threshold))


def threshold_for_every_source(validation: dict[str, tuple[np.ndarray, np.ndarray]],
                               max_ham_blocked: float, min_threshold: float,
                               min_source_ham: int) -> tuple[float, str, dict]:
    """The lowest threshold whose ham blocked stays within ``max_ham_blocked`` on the
    validation part of every source that can measure it: the first source (the corpus)
    always, each later source (extra sources) when its validation part holds at least
    ``min_source_ham`` ham. The strictest source wins.

    ``validation`` maps each source, the corpus first, to its validation labels and
    probabilities. Returns the threshold, the source that set it, and each source's
    figures: its own threshold (None when it has too little ham to count), and its ham
    blocked and spam caught at the chosen threshold.
    """
    own = {}
    for position, (source, (labels, probabilities)) in enumerate(validation.items()):
        ham = int(np.sum(~np.asarray(labels, bool)))
        if position == 0 or (ham and ham >= min_source_ham):
            own[source] = threshold_for_ham_blocked(labels, probabilities, max_ham_blocked,
                                                    min_threshold)
    set_by = max(own, key=lambda source: own[source])  # the first of equals: the corpus
    threshold = own[set_by]
    figures = {}
    for source, (labels, probabilities) in validation.items():
        at = classification_metrics(labels, probabilities, threshold)
        figures[source] = {"validation_messages": at["messages"],
                           "validation_ham": at["confusion_matrix"]["ham_as_ham"]
                           + at["confusion_matrix"]["ham_as_spam"],
                           "own_threshold": own.get(source),
                           "ham_blocked": at["ham_blocked"], "spam_caught": at["spam_caught"]}
    return threshold, set_by, figures


# --------------------------------------------------------------------------- uncertainty

Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile: two-sided 95%


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); ``(nan, nan)`` for no
    trials. Unlike the normal approximation it stays within [0, 1] and is honest for
    proportions near 0 or 1 (ham blocked) and for small counts."""
    if trials <= 0:
        return float("nan"), float("nan")
    share = successes / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(centre - half, 0.0)
    high = 1.0 if successes == trials else min(centre + half, 1.0)  # exact at the ends
    return float(low), float(high)


def roc_auc_interval(auc: float, positives: int, negatives: int,
                     z: float = Z_95) -> tuple[float, float]:
    """A 95% interval of a ROC AUC from its standard error after Hanley and McNeil (1982),
    which needs only the AUC and the two class sizes; ``(nan, nan)`` without both."""
    if positives <= 0 or negatives <= 0 or np.isnan(auc):
        return float("nan"), float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
                + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    half = z * np.sqrt(max(variance, 0.0))
    return float(max(auc - half, 0.0)), float(min(auc + half, 1.0))


def intervals(figures: dict) -> dict[str, tuple[float, float]]:
    """95% intervals of the accuracy, spam caught, ham blocked and ROC AUC of
    :func:`classification_metrics`'s ``figures``, from its confusion matrix."""
    c = figures["confusion_matrix"]
    ham = c["ham_as_ham"] + c["ham_as_spam"]
    spam = c["spam_as_spam"] + c["spam_as_ham"]
    return {
        "accuracy": wilson_interval(c["ham_as_ham"] + c["spam_as_spam"], ham + spam),
        "spam_caught": wilson_interval(c["spam_as_spam"], spam),
        "ham_blocked": wilson_interval(c["ham_as_spam"], ham),
        "roc_auc": roc_auc_interval(figures["roc_auc"], spam, ham),
    }
