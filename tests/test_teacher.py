"""The teacher's out-of-fold scores, on the real corpus."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import SHARED_ZIP
from pipeline.data import corpus
from pipeline.model import teacher


@pytest.fixture(scope="module")
def training_split():
    if not SHARED_ZIP.is_file():
        pytest.skip(f"the real corpus is not at {SHARED_ZIP} (../shared is absent)")
    table, _ = corpus.build_corpus_table(corpus.read_corpus_member(SHARED_ZIP.read_bytes()),
                                         seed=0, max_malformed_share=0.01)
    return corpus.texts_and_labels(table, "train")


def test_each_message_is_scored_by_an_svm_that_never_saw_it(training_split):
    texts, labels = training_split
    scores = teacher.out_of_fold_scores(texts, labels, squash=3.0)
    assert scores.shape == (len(texts),) and ((0 < scores) & (scores < 1)).all()
    assert roc_auc_score(labels, scores) > 0.98  # a good teacher
    # an SVM scoring its own training messages separates them (almost) perfectly, with
    # margins of at least 1 on each side; out of fold, some spam look like ham
    inside = teacher.svm_teacher().fit(texts, labels).decision_function(texts)
    assert (inside[labels] > 0).mean() > 0.99
    out_of_fold_spam_as_ham = (scores[labels] < 0.5).mean()
    assert 0.02 < out_of_fold_spam_as_ham < 0.3
    # the same folds and the same scores on another call
    np.testing.assert_array_equal(scores, teacher.out_of_fold_scores(texts, labels, 3.0))


def test_the_squash_sets_how_sure_the_teacher_is(training_split):
    texts, labels = training_split
    texts, labels = texts[:600], labels[:600]
    soft, sharp = (teacher.out_of_fold_scores(texts, labels, squash) for squash in (1.0, 3.0))
    margins = np.log(soft / (1 - soft))  # squash 1: the margin itself
    np.testing.assert_allclose(np.log(sharp / (1 - sharp)), 3 * margins, rtol=1e-3, atol=1e-3)


def test_too_few_spam_for_the_folds_is_a_clear_error():
    texts = [f"message {i}" for i in range(40)]
    labels = np.array([True] * 3 + [False] * 37)
    with pytest.raises(ValueError, match="at least 5 spam and 5 ham.*teacher_weight = 0"):
        teacher.out_of_fold_scores(texts, labels, squash=3.0)


def test_a_squash_that_is_not_positive_is_a_clear_error():
    with pytest.raises(ValueError, match="teacher_squash must be above 0"):
        teacher.out_of_fold_scores(["a", "b"], np.array([True, False]), squash=0.0)
