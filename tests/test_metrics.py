import numpy as np
import pytest
from sklearn import metrics as reference

from pipeline.model import metrics


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.15
    p = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1).round(2)  # rounded: many ties
    return y, p


def test_metrics_agree_with_scikit_learn(scored):
    y, p = scored
    result = metrics.classification_metrics(y, p, threshold=0.5)
    predicted = p >= 0.5
    assert result["accuracy"] == pytest.approx(reference.accuracy_score(y, predicted))
    assert result["mcc"] == pytest.approx(reference.matthews_corrcoef(y, predicted))
    assert result["spam_caught"] == pytest.approx(reference.recall_score(y, predicted))
    assert result["roc_auc"] == pytest.approx(reference.roc_auc_score(y, p))
    assert result["pr_auc"] == pytest.approx(reference.average_precision_score(y, p))
    tn, fp, fn, tp = reference.confusion_matrix(y, predicted).ravel()
    assert result["confusion_matrix"] == {"ham_as_ham": tn, "ham_as_spam": fp,
                                          "spam_as_ham": fn, "spam_as_spam": tp}
    assert result["ham_blocked"] == pytest.approx(fp / (fp + tn))


def test_threshold_blocks_no_more_ham_than_allowed(scored):
    y, p = scored
    for target in (0.0, 0.01, 0.05, 0.2):
        threshold = metrics.threshold_for_ham_blocked(y, p, target, min_threshold=0.0)
        blocked = np.mean(p[~y] >= threshold)
        assert blocked <= target
        # and it is the lowest such threshold: one ham more would exceed the target
        lower = np.max(p[~y][p[~y] < threshold], initial=-1)
        assert np.mean(p[~y] >= lower) > target or lower < 0


def test_threshold_never_goes_below_the_floor():
    y = np.array([0, 0, 1], bool)
    assert metrics.threshold_for_ham_blocked(y, np.array([0.1, 0.2, 0.9]), 0.5, 0.5) == 0.5


def test_curves_agree_with_scikit_learn(scored):
    y, p = scored
    fpr, tpr, _ = metrics.roc_curve(y, p)
    ref_fpr, ref_tpr, _ = reference.roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    precision, recall, thresholds = metrics.precision_recall_curve(y, p)
    ref_precision, ref_recall, ref_thresholds = reference.precision_recall_curve(y, p)
    # scikit-learn lists thresholds ascending and appends the (1, 0) end point
    np.testing.assert_allclose(precision, ref_precision[:-1][::-1])
    np.testing.assert_allclose(recall, ref_recall[:-1][::-1])
    np.testing.assert_allclose(thresholds, ref_thresholds[::-1])


def test_wilson_interval_matches_published_values_and_stays_in_range():
    # Newcombe (1998), table I: 0/10 -> [0, 0.2775]; 81/263 -> [0.2553, 0.3662]
    assert metrics.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert metrics.wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert metrics.wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert all(np.isnan(metrics.wilson_interval(0, 0)))


def test_roc_auc_interval_holds_the_auc_and_narrows_with_more_messages():
    small = metrics.roc_auc_interval(0.9, 20, 100)
    large = metrics.roc_auc_interval(0.9, 200, 1000)
    assert small[0] < large[0] < 0.9 < large[1] < small[1] <= 1.0
    assert metrics.roc_auc_interval(1.0, 20, 100) == (1.0, 1.0)
    assert all(np.isnan(metrics.roc_auc_interval(0.9, 0, 100)))
