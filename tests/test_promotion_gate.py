"""The gate's paired judgement of a regression (exact one-sided McNemar) and the threshold
that holds on every source: pure functions, on numbers a reader can check by hand."""
import math

import numpy as np
import pytest

from pipeline.model import metrics
from pipeline.serving import promotion_gate

RULES = promotion_gate.GateRules(min_mcc=0.0, max_ham_blocked=1.0, min_spam_caught=0.0)
GOOD = {"mcc": 0.95, "ham_blocked": 0.002, "spam_caught": 0.9, "messages": 1000}


@pytest.mark.parametrize("worse, better, expected", [
    (0, 0, 1.0), (2, 0, 0.25), (4, 2, 22 / 64), (5, 0, 1 / 32), (0, 5, 1.0),
    (10, 1, 12 / 2048)])
def test_the_exact_one_sided_mcnemar_p_value(worse, better, expected):
    assert promotion_gate.mcnemar_p_value(worse, better) == pytest.approx(expected)


def test_the_p_value_agrees_with_scipys_binomial_test():
    from scipy.stats import binomtest

    for worse, better in [(7, 3), (30, 12), (120, 100), (1, 40)]:
        expected = binomtest(worse, worse + better, 0.5, alternative="greater").pvalue
        assert promotion_gate.mcnemar_p_value(worse, better) == pytest.approx(expected)


def test_two_newly_blocked_ham_of_nine_hundred_is_chance_not_a_regression():
    labels = np.r_[np.zeros(900, bool), np.ones(140, bool)]
    live = labels.copy()
    candidate = labels.copy()
    candidate[:2] = True  # blocks two ham the live version passes
    comparisons = promotion_gate.compare(labels, candidate, live)
    assert comparisons["ham"].as_dict() == {"messages": 900, "worse": 2, "better": 0,
                                            "p_value": 0.25, "net_share": 2 / 900}
    assert promotion_gate.refusals(GOOD, comparisons, RULES) == []
    verdict = promotion_gate.verdicts(comparisons, 0.05, 0.002, 0.02)["ham"]
    assert verdict == ("blocks 2 ham that the live version passes, passes 0 that it blocks "
                       "(of 900 ham); p = 0.25: no regression")


def test_a_significant_and_large_rise_of_ham_blocked_is_refused_with_its_counts():
    labels = np.r_[np.zeros(900, bool), np.ones(140, bool)]
    live, candidate = labels.copy(), labels.copy()
    candidate[:12] = True   # 12 ham newly blocked
    live[12:14] = True      # 2 ham the live version blocks and the candidate passes
    comparisons = promotion_gate.compare(labels, candidate, live)
    assert (comparisons["ham"].worse, comparisons["ham"].better) == (12, 2)
    expected_p = sum(math.comb(14, k) for k in range(12, 15)) / 2 ** 14
    assert comparisons["ham"].p_value == pytest.approx(expected_p)
    [reason] = promotion_gate.refusals(GOOD, comparisons, RULES)
    assert "blocks 12 ham that the live version passes, passes 2 that it blocks" in reason
    assert "(of 900 ham)" in reason and "regression_level" in reason
    assert "max_ham_blocked_rise" in reason and "on the test split" in reason


def test_a_significant_difference_below_the_practical_minimum_is_no_regression():
    labels = np.r_[np.zeros(5000, bool), np.ones(10, bool)]
    live, candidate = labels.copy(), labels.copy()
    candidate[:8] = True  # p = 1/256, but 8 of 5,000 ham is 0.16%, under 0.2%
    comparisons = promotion_gate.compare(labels, candidate, live)
    assert comparisons["ham"].p_value < 0.05
    assert promotion_gate.refusals(GOOD, comparisons, RULES) == []
    stricter = promotion_gate.GateRules(0.0, 1.0, 0.0, max_ham_blocked_rise=0.001)
    assert len(promotion_gate.refusals(GOOD, comparisons, stricter)) == 1


def test_lost_spam_is_judged_the_same_way_and_gains_offset_losses():
    labels = np.r_[np.zeros(100, bool), np.ones(100, bool)]
    live, candidate = labels.copy(), labels.copy()
    candidate[100:110] = False  # passes 10 spam the live version catches
    comparisons = promotion_gate.compare(labels, candidate, live)
    [reason] = promotion_gate.refusals(GOOD, comparisons, RULES)
    assert "passes 10 spam that the live version catches, catches 0 that it passes" in reason
    assert "max_spam_caught_drop" in reason
    live[110:120] = False  # ...and catches 10 the live version passes: no net loss
    comparisons = promotion_gate.compare(labels, candidate, live)
    assert comparisons["spam"].net_share == 0
    assert promotion_gate.refusals(GOOD, comparisons, RULES) == []


def test_the_absolute_floors_stay_and_a_source_regression_names_the_source():
    bad = {**GOOD, "mcc": 0.5, "ham_blocked": 0.05, "spam_caught": 0.5}
    reasons = promotion_gate.refusals(bad, None, promotion_gate.GateRules(0.9, 0.01, 0.85))
    assert [r.split("(")[-1] for r in reasons] == [
        "[PromoteVersion] min_mcc)", "[PromoteVersion] max_ham_blocked)",
        "[PromoteVersion] min_spam_caught)"]
    labels = np.r_[np.zeros(40, bool), np.ones(20, bool)]
    live, candidate = labels.copy(), labels.copy()
    candidate[40:46] = False
    comparisons = promotion_gate.compare(labels, candidate, live)
    [reason] = promotion_gate.source_refusals(
        "feedback", {**GOOD, "messages": 60}, comparisons, promotion_gate.SourceRules(), 0.05)
    assert "extra source 'feedback' (60 messages)" in reason
    assert "source_max_spam_caught_drop" in reason


def test_the_threshold_holds_on_every_source_with_enough_ham():
    rng = np.random.default_rng(0)
    corpus_labels = rng.random(1000) < 0.13
    corpus_scores = np.where(corpus_labels, rng.uniform(0.6, 1, 1000), rng.uniform(0, 0.7, 1000))
    # a new kind of ham that scores high: it must set the threshold
    new_labels = np.r_[np.zeros(200, bool), np.ones(20, bool)]
    new_scores = np.r_[rng.uniform(0.3, 0.95, 200), rng.uniform(0.9, 1, 20)]
    small_labels = np.r_[np.zeros(10, bool), np.ones(2, bool)]  # 10 ham: too few to count
    small_scores = np.r_[np.full(10, 0.99), np.full(2, 0.999)]
    validation = {"corpus": (corpus_labels, corpus_scores), "new": (new_labels, new_scores),
                  "small": (small_labels, small_scores)}
    threshold, set_by, figures = metrics.threshold_for_every_source(validation, 0.01, 0.5, 100)
    assert set_by == "new"
    assert threshold == metrics.threshold_for_ham_blocked(new_labels, new_scores, 0.01, 0.5)
    assert threshold > metrics.threshold_for_ham_blocked(corpus_labels, corpus_scores, 0.01)
    for source in ("corpus", "new"):
        assert figures[source]["ham_blocked"] <= 0.01
    assert figures["small"]["own_threshold"] is None
    assert figures["small"]["validation_ham"] == 10 and figures["small"]["ham_blocked"] == 1.0
    only_corpus = metrics.threshold_for_every_source(
        {"corpus": validation["corpus"]}, 0.01, 0.5, 100)
    assert only_corpus[:2] == (metrics.threshold_for_ham_blocked(
        corpus_labels, corpus_scores, 0.01, 0.5), "corpus")


def test_a_source_without_validation_rows_neither_sets_the_threshold_nor_fails():
    """A small labelled file can leave a source no validation row (its split rounds to 0):
    found in review, where it failed the run after training."""
    corpus_part = (np.array([False, True, False, False]), np.array([0.1, 0.9, 0.2, 0.3]))
    empty = (np.zeros(0, bool), np.zeros(0))
    threshold, set_by, figures = metrics.threshold_for_every_source(
        {"corpus": corpus_part, "tiny": empty}, 0.003, 0.5, 1)
    assert (threshold, set_by) == (0.5, "corpus")
    assert figures["tiny"]["validation_messages"] == 0 and figures["tiny"]["own_threshold"] is None
    assert metrics.classification_metrics(*empty, 0.5)["messages"] == 0
