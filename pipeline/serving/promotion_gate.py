"""Decide whether a candidate model may go live: absolute floors from luigi.cfg on the SMS
Spam Collection's test split, and no regression against the live version on the same
messages, judged by evidence; then the same comparison on each extra source's test part.

A regression is judged paired, message by message (McNemar): of the ham (or spam) that
the two versions decide differently, the candidate must not get wrong more than chance
explains. With ``worse`` messages the candidate gets wrong and the live version right,
and ``better`` the other way round, a regression counts only when

- the exact one-sided McNemar test rejects "no difference": ``P(X >= worse)`` for
  ``X ~ Binomial(worse + better, 1/2)`` is below ``[PromoteVersion] regression_level``;
- and the net loss, ``(worse - better) / messages of that class``, is above the practical
  minimum (``max_ham_blocked_rise`` for ham, ``max_spam_caught_drop`` for spam).

So two ham out of 900 newly blocked (p = 0.25) is chance, not a regression, while a
candidate that blocks 12 more ham than it frees is refused. Pure: no Luigi, no TensorFlow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GateRules:
    """Every field is a setting of ``[PromoteVersion]`` in luigi.cfg."""

    min_mcc: float
    max_ham_blocked: float
    min_spam_caught: float
    max_ham_blocked_rise: float = 0.002
    max_spam_caught_drop: float = 0.02
    regression_level: float = 0.05


@dataclass(frozen=True)
class SourceRules:
    """The same comparison on the test part of each extra source (``[PromoteVersion]
    source_*``), and optional absolute MCC floors per source name."""

    max_ham_blocked_rise: float = 0.0
    max_spam_caught_drop: float = 0.0
    min_mcc: dict[str, float] | None = None   # source name -> absolute floor


@dataclass(frozen=True)
class PairedComparison:
    """Candidate against live on the same messages of one class (ham or spam)."""

    kind: str        # "ham" or "spam"
    messages: int    # messages of that class
    worse: int       # the candidate gets wrong and the live version right
    better: int      # the candidate gets right and the live version wrong
    p_value: float   # exact one-sided McNemar: P(X >= worse), X ~ Bin(worse + better, 1/2)

    @property
    def net_share(self) -> float:
        """The candidate's net loss as a share of the class (negative: a gain)."""
        return (self.worse - self.better) / self.messages if self.messages else 0.0

    def is_regression(self, level: float, minimum: float) -> bool:
        """More errors than chance explains (p below ``level``) and than ``minimum``, the
        net share of the class that may be lost."""
        return self.p_value < level and self.net_share > minimum

    def describe(self) -> str:
        """What an operator reads: "blocks 4 ham that the live version passes, passes 2
        that it blocks (of 966 ham); p = 0.34"."""
        if self.kind == "ham":
            counts = (f"blocks {self.worse} ham that the live version passes, passes "
                      f"{self.better} that it blocks")
        else:
            counts = (f"passes {self.worse} spam that the live version catches, catches "
                      f"{self.better} that it passes")
        return f"{counts} (of {self.messages} {self.kind}); p = {self.p_value:.2g}"

    def as_dict(self) -> dict:
        return {"messages": self.messages, "worse": self.worse, "better": self.better,
                "p_value": self.p_value, "net_share": self.net_share}


def mcnemar_p_value(worse: int, better: int) -> float:
    """Exact one-sided McNemar test: the chance of ``worse`` or more discordant pairs going
    against the candidate if each went either way with probability 1/2."""
    n = worse + better
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(worse, n + 1)) / 2 ** n


def compare(labels: np.ndarray, candidate_spam: np.ndarray, live_spam: np.ndarray
            ) -> dict[str, PairedComparison]:
    """Paired comparison of two versions' decisions (True: labelled spam) on the same
    messages, for ham (errors: blocked) and for spam (errors: passed)."""
    labels = np.asarray(labels, bool)
    candidate_right = np.asarray(candidate_spam, bool) == labels
    live_right = np.asarray(live_spam, bool) == labels
    result = {}
    for kind, rows in (("ham", ~labels), ("spam", labels)):
        worse = int(np.sum(rows & ~candidate_right & live_right))
        better = int(np.sum(rows & candidate_right & ~live_right))
        result[kind] = PairedComparison(kind, int(rows.sum()), worse, better,
                                        mcnemar_p_value(worse, better))
    return result


def paired_regressions(comparisons: dict[str, PairedComparison], level: float,
                       max_ham_blocked_rise: float, max_spam_caught_drop: float,
                       where: str, setting_prefix: str) -> list[str]:
    """Reasons to refuse for a regression against the live version that chance does not
    explain (see the module docstring); each names the counts, p and the settings."""
    reasons = []
    for comparison, minimum, setting in (
            (comparisons["ham"], max_ham_blocked_rise, "max_ham_blocked_rise"),
            (comparisons["spam"], max_spam_caught_drop, "max_spam_caught_drop")):
        if comparison.is_regression(level, minimum):
            reasons.append(
                f"{where}: the candidate {comparison.describe()} < {level}, a net "
                f"{comparison.net_share:.2%} of the {comparison.kind} over the allowed "
                f"{minimum:.2%}: a regression against the live version ([PromoteVersion] "
                f"regression_level, {setting_prefix}{setting})")
    return reasons


def verdicts(comparisons: dict[str, PairedComparison], level: float,
             max_ham_blocked_rise: float, max_spam_caught_drop: float) -> dict[str, str]:
    """One line per class for the audit log, whether or not it refuses."""
    lines = {}
    for kind, minimum in (("ham", max_ham_blocked_rise), ("spam", max_spam_caught_drop)):
        comparison = comparisons[kind]
        verdict = "regression" if comparison.is_regression(level, minimum) else "no regression"
        lines[kind] = f"{comparison.describe()}: {verdict}"
    return lines


def refusals(candidate: dict, comparisons: dict[str, PairedComparison] | None,
             rules: GateRules) -> list[str]:
    """Reasons to refuse ``candidate`` (its test metrics), each naming the metric, the
    values and the setting; empty when it may be promoted. ``comparisons`` is the paired
    comparison with the live version on the same messages, None when nothing is live."""
    reasons = []
    if candidate["mcc"] < rules.min_mcc:
        reasons.append(f"test MCC {candidate['mcc']:.4f} is below the floor {rules.min_mcc} "
                       "([PromoteVersion] min_mcc)")
    if candidate["ham_blocked"] > rules.max_ham_blocked:
        reasons.append(f"test ham blocked {candidate['ham_blocked']:.4f} is above the ceiling "
                       f"{rules.max_ham_blocked} ([PromoteVersion] max_ham_blocked)")
    if candidate["spam_caught"] < rules.min_spam_caught:
        reasons.append(f"test spam caught {candidate['spam_caught']:.4f} is below the floor "
                       f"{rules.min_spam_caught} ([PromoteVersion] min_spam_caught)")
    if comparisons is None:
        return reasons
    return reasons + paired_regressions(comparisons, rules.regression_level,
                                        rules.max_ham_blocked_rise, rules.max_spam_caught_drop,
                                        "on the test split", "")


def source_refusals(source: str, candidate: dict,
                    comparisons: dict[str, PairedComparison] | None, rules: SourceRules,
                    level: float) -> list[str]:
    """Reasons to refuse ``candidate`` for its metrics on the test part of extra source
    ``source``; each names the source, the values and the setting."""
    reasons = []
    where = f"on the test part of extra source {source!r} ({candidate['messages']} messages)"
    floor = (rules.min_mcc or {}).get(source)
    if floor is not None and not candidate["mcc"] >= floor:
        reasons.append(f"MCC {candidate['mcc']:.4f} {where} is below its floor {floor} "
                       "([PromoteVersion] source_min_mcc)")
    if comparisons is None:
        return reasons
    return reasons + paired_regressions(comparisons, level, rules.max_ham_blocked_rise,
                                        rules.max_spam_caught_drop, where, "source_")
