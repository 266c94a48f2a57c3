"""Decide whether a candidate model may go live: absolute floors from luigi.cfg, and no
regression beyond a tolerance against the live version on the same test split of the
SMS Spam Collection; then, for each extra source, on that source's test part."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateRules:
    """Every field is a setting of ``[PromoteVersion]`` in luigi.cfg."""

    min_mcc: float
    max_ham_blocked: float
    min_spam_caught: float
    max_mcc_drop: float
    max_ham_blocked_rise: float


def refusals(candidate: dict, live: dict | None, rules: GateRules) -> list[str]:
    """Reasons to refuse ``candidate`` (test metrics), each naming the metric, the values
    and the setting; empty when it may be promoted. ``live`` is the live version's metrics
    on the same split, or None when nothing is live yet."""
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
    return reasons + regressions(candidate, live, rules.max_mcc_drop,
                                 rules.max_ham_blocked_rise, "test ", "", "")


def regressions(candidate: dict, live: dict | None, max_mcc_drop: float,
                max_ham_blocked_rise: float, metric_prefix: str, where: str,
                setting_prefix: str) -> list[str]:
    """Reasons to refuse ``candidate`` for falling behind the live version's metrics on
    the same messages (none when nothing is live); the settings are
    ``[PromoteVersion] <setting_prefix>max_mcc_drop`` and ``...max_ham_blocked_rise``."""
    if live is None:
        return []
    reasons = []
    if candidate["mcc"] < live["mcc"] - max_mcc_drop:
        reasons.append(
            f"{metric_prefix}MCC {candidate['mcc']:.4f}{where} falls behind the live "
            f"version's {live['mcc']:.4f} by more than {max_mcc_drop} "
            f"([PromoteVersion] {setting_prefix}max_mcc_drop)")
    if candidate["ham_blocked"] > live["ham_blocked"] + max_ham_blocked_rise:
        reasons.append(
            f"{metric_prefix}ham blocked {candidate['ham_blocked']:.4f}{where} exceeds the "
            f"live version's {live['ham_blocked']:.4f} by more than {max_ham_blocked_rise} "
            f"([PromoteVersion] {setting_prefix}max_ham_blocked_rise)")
    return reasons


@dataclass(frozen=True)
class SourceRules:
    """Floors for the test part of each extra source (``[PromoteVersion] source_*``):
    by default a candidate may be no worse than the live version on any of them."""

    max_mcc_drop: float = 0.0
    max_ham_blocked_rise: float = 0.0
    min_mcc: dict[str, float] | None = None   # source name -> absolute floor


def source_refusals(source: str, candidate: dict, live: dict | None,
                    rules: SourceRules) -> list[str]:
    """Reasons to refuse ``candidate`` for its metrics on the test part of extra source
    ``source``; each names the source, the values and the setting."""
    reasons = []
    where = f"on the test part of extra source {source!r} ({candidate['messages']} messages)"
    floor = (rules.min_mcc or {}).get(source)
    if floor is not None and not candidate["mcc"] >= floor:
        reasons.append(f"MCC {candidate['mcc']:.4f} {where} is below its floor {floor} "
                       "([PromoteVersion] source_min_mcc)")
    return reasons + regressions(candidate, live, rules.max_mcc_drop,
                                 rules.max_ham_blocked_rise, "", f" {where}", "source_")
