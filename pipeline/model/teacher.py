"""The teacher: what a TF-IDF linear SVM thinks of each training message, scored by a
model that never saw that message.

The SVM anchor of bench/quality.py (TF-IDF over word 1-2-grams and character 2-5-grams
cut per word, a linear SVM) ranks messages of other collections better than the network
does. During training, the network gets a second, training-only head that learns this
score (``ModelConfig.teacher_weight``), so its features learn what the SVM's n-grams
see; the served output still learns the true labels, and the head is not exported.
Each training message is scored out of fold: by an SVM fitted on the other folds, so the
teacher cannot simply repeat the message's label back.
"""
from __future__ import annotations

import numpy as np

FOLDS = 5


def svm_teacher():
    """An unfitted TF-IDF word 1-2 + char_wb 2-5-gram linear SVM (scikit-learn)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    return make_pipeline(
        make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        LinearSVC(C=1.0, random_state=0))


def out_of_fold_scores(texts: list[str], labels: np.ndarray, squash: float,
                       folds: int = FOLDS) -> np.ndarray:
    """Each message's SVM score in (0, 1), from an SVM fitted on the other ``folds`` - 1
    folds (stratified, fixed seed): ``1 / (1 + exp(-squash * margin))``."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if squash <= 0:
        raise ValueError(f"teacher_squash must be above 0 (got {squash}): it scales the SVM's "
                         "margins before the logistic squash")
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if np.bincount(labels.astype(int), minlength=2).min() < folds:
        raise ValueError(f"the teacher needs at least {folds} spam and {folds} ham messages "
                         f"in the training split (one of each per fold); set "
                         f"teacher_weight = 0 to train without it")
    texts = np.asarray(texts, dtype=object)
    margins = np.zeros(len(texts))
    for fit, score in StratifiedKFold(folds, shuffle=True, random_state=0).split(texts, labels):
        model = svm_teacher().fit(list(texts[fit]), labels[fit])
        margins[score] = model.decision_function(list(texts[score]))
    return (1 / (1 + np.exp(-squash * margins))).astype("float32")


BASELINE_NAME = ("TF-IDF (word 1-2-grams, character 2-5-grams) linear SVM, trained on the "
                 "same training split")


def svm_baseline(train: tuple[list[str], np.ndarray], validation: tuple[list[str], np.ndarray],
                 measured: dict[str, tuple[list[str], np.ndarray]], max_ham_blocked: float,
                 min_threshold: float) -> dict:
    """The SVM alone as a spam filter, for comparison: fitted on ``train``, its threshold
    chosen on ``validation`` by the network's rule (the lowest that blocks at most
    ``max_ham_blocked`` of the ham, not below ``min_threshold``), then measured on each of
    ``measured`` (name -> texts, labels). Scores are the margins squashed into (0, 1)."""
    from pipeline.model import metrics

    model = svm_teacher().fit(list(train[0]), np.asarray(train[1]))

    def score(texts):
        return 1 / (1 + np.exp(-2 * model.decision_function(list(texts))))

    threshold = metrics.threshold_for_ham_blocked(
        validation[1], score(validation[0]), max_ham_blocked, min_threshold)
    return {"model": BASELINE_NAME, "threshold": threshold,
            **{name: metrics.classification_metrics(labels, score(texts), threshold)
               for name, (texts, labels) in measured.items()}}
