"""Put a staged export live, TFX Pusher style: a smoke test in a fresh process, the
quality gate (:mod:`pipeline.serving.promotion_gate`) against the live version on the same test
messages, an audit record either way, then an atomic publish (:mod:`pipeline.serving.model_base`).
No Luigi here; ``PromoteVersion`` wires it.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from pipeline.data import corpus
from pipeline.serving import promotion_gate
from pipeline.serving import model_base

HEADLINE = ("accuracy", "mcc", "spam_caught", "ham_blocked", "roc_auc", "threshold")


class PromotionRefused(RuntimeError):
    """The candidate failed its smoke test or the gate; nothing was published."""


@dataclass(frozen=True)
class PromotionPolicy:
    """Every field is a setting of ``[PromoteVersion]``."""

    gate: promotion_gate.GateRules
    sources: promotion_gate.SourceRules
    keep_versions: int = 5
    smoke_test: bool = True
    force: bool = False


# What the promotion runs besides the gate on the candidate's and the live version's
# signatures (shadow scoring, pipeline.scoring.shadow, which this layer cannot import):
# (candidate signature, live version, live signature) -> (summary, reason to refuse or None)
ShadowStep = Callable[[Callable, int, Callable], "tuple[dict, str | None]"]


def promote(staged: Path, base: Path, export_id: str, table: pd.DataFrame,
            policy: PromotionPolicy,
            status: Callable[[str], None] = lambda message: None,
            shadow: ShadowStep | None = None) -> tuple[int, bool]:
    """Smoke-test, gate and publish ``staged`` under ``base``; returns the version and
    whether it was newly published (False: the same export is live already).

    The smoke test runs in a fresh process while this one gates: the gate scores the
    candidate and the live version through their serving signatures on the SMS Spam
    Collection's test split of ``table``, then on each extra source's test part. The smoke
    test's verdict comes first, then the gate's. With a live version, ``shadow`` then
    compares the two on recent traffic; its summary goes into the audit record, and its
    reason, if any, joins the gate's. Raises :class:`PromotionRefused` with every reason,
    after recording them in the audit log; the live version keeps serving and the
    candidate stays staged.
    """
    smoke = None
    if policy.smoke_test:
        status("smoke test: loading the export in a fresh process, beside the gate")
        smoke = SmokeTest(staged)
    try:
        live, reasons, summary, signatures = _gate(staged, base, table, policy, status)
        if shadow and live:
            summary["shadow"], reason = shadow(signatures[0], live, signatures[1])
            reasons += [reason] if reason else []
    except Exception:
        if smoke:  # a candidate that cannot load fails both: report its smoke test
            smoke.check(base, export_id)
        raise
    except BaseException:
        if smoke:
            smoke.stop()
        raise
    if smoke:
        smoke.check(base, export_id)
    if summary.get("verdicts"):
        status(f"gate against version {live} on the test split: "
               + "; ".join(summary["verdicts"].values()))
    if reasons and not policy.force:
        model_base.append_audit(base, "refused", export_id=export_id, source=str(staged),
                             reasons=reasons, **summary)
        raise PromotionRefused(
            "candidate refused: " + "; ".join(reasons) + f". It stays staged at {staged}"
            + (f"; version {live} keeps serving" if live else "")
            + ". To publish it anyway, rerun with --PromoteVersion-force.")
    return model_base.promote_export(staged, base, export_id, policy.keep_versions,
                                  details={**summary, "forced_past": reasons})


def _gate(staged: Path, base: Path, table: pd.DataFrame, policy: PromotionPolicy,
          status: Callable[[str], None]) -> tuple[int | None, list[str], dict, tuple]:
    """The live version, the gate's refusals and the audit summary of the candidate
    ``staged`` against it: each set's metrics, and the paired comparison with the live
    version (counts, p-values and the verdict) whether or not it refuses; and the two
    signatures (the live one None without a live version)."""
    from pipeline.serving.exported_model import ExportEvaluator

    live = model_base.live_version(base)
    measure_candidate = ExportEvaluator(staged)
    measure_live = ExportEvaluator(base / str(live)) if live else None
    rules = policy.gate

    def scored(source: str, max_ham_blocked_rise: float, max_spam_caught_drop: float):
        """Both versions on one source's test part: the candidate's metrics, the live
        version's, the paired comparison and its audit entry."""
        status(f"gate: scoring the test part of {source} with candidate and live")
        texts, labels = corpus.texts_and_labels(table, "test", source)
        candidate, candidate_spam = measure_candidate(texts, labels)
        entry = {"candidate_metrics": headline(candidate), "live_metrics": None}
        if not measure_live:
            return candidate, None, entry
        live_metrics, live_spam = measure_live(texts, labels)
        comparisons = promotion_gate.compare(labels, candidate_spam, live_spam)
        entry.update(live_metrics=headline(live_metrics),
                     paired={kind: c.as_dict() for kind, c in comparisons.items()},
                     verdicts=promotion_gate.verdicts(comparisons, rules.regression_level,
                                                      max_ham_blocked_rise,
                                                      max_spam_caught_drop))
        return candidate, comparisons, entry

    candidate, comparisons, entry = scored(corpus.CORPUS_SOURCE, rules.max_ham_blocked_rise,
                                           rules.max_spam_caught_drop)
    reasons = promotion_gate.refusals(candidate, comparisons, rules)
    summary = {"live_version": live, "threshold_rule": measure_candidate.threshold_rule,
               **entry}
    for source in corpus.sources_of(table)[1:]:
        source_candidate, source_comparisons, source_entry = scored(
            source, policy.sources.max_ham_blocked_rise, policy.sources.max_spam_caught_drop)
        reasons += promotion_gate.source_refusals(source, source_candidate,
                                                  source_comparisons, policy.sources,
                                                  rules.regression_level)
        summary.setdefault("extra_sources", {})[source] = source_entry
    return live, reasons, summary, (measure_candidate.signature,
                                    measure_live.signature if measure_live else None)


class SmokeTest:
    """``staged`` loaded in a fresh process as the server does (``pipeline.cli.smoke_test``),
    started at once; :meth:`check` waits for its verdict."""

    TIMEOUT_SECONDS = 600

    def __init__(self, staged: Path):
        self.staged = staged
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli.smoke_test", str(staged)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def check(self, base: Path, export_id: str) -> None:
        """Wait for the smoke test; on failure, record the refusal and raise
        :class:`PromotionRefused`."""
        try:
            _, stderr = self._process.communicate(timeout=self.TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.stop()
            stderr = f"no verdict within {self.TIMEOUT_SECONDS} s"
        if self._process.returncode != 0:
            reason = (stderr.strip().splitlines() or ["no output"])[-1]
            model_base.append_audit(base, "refused", export_id=export_id,
                                 source=str(self.staged), reasons=[reason])
            raise PromotionRefused(f"candidate {self.staged} failed its smoke test and was "
                                   f"not published: {reason}")

    def stop(self) -> None:
        self._process.kill()
        self._process.communicate()


def headline(result: dict | None) -> dict | None:
    """The figures of a metrics dict that the audit log keeps."""
    return {key: result[key] for key in HEADLINE} if result else None
