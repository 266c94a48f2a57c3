"""Shadow scoring: what a version would change on real traffic before it goes live.

Two versions score the same messages through their ``serving_default`` signatures: the
*baseline* (the live version, or version A of ``spam-ham-versions diff``) and the
*candidate*. A message whose label differs is a flip: **newly blocked** when the baseline
passed it as ham and the candidate labels it spam, **newly passed** the other way. The
summary (``shadow.json``) counts both, as shares of all messages and of the messages the
baseline passed (or blocked), compares the two score distributions over the drift
monitor's bins with the population stability index, and shows the largest flips. The flip
file (``shadow_flips.csv``) lists every flipped message in the review queue's columns
(``label`` empty, the baseline's probability under ``spam_probability``) plus the
candidate's probability: label it and add it to ``[DownloadCorpus] extra_sources``, as a
review file.

The promotion (``PromoteVersion``) compares the candidate with the live version on the
messages of the most recent scored days (:func:`recent_scored_messages`); ``spam-ham-versions
diff`` compares any two versions on any input file. Messages are read and scored chunk by
chunk, both versions' batches in one thread pool; only the flips are kept, and they are
written as they come, so memory stays flat in the input's size.
"""
from __future__ import annotations

import heapq
import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from pipeline.atomic_output import atomic_path
from pipeline.data.spreadsheet_cells import write_spreadsheet_csv
from pipeline.monitoring import drift
from pipeline.monitoring.review_queue import QUEUE_COLUMNS
from pipeline.scoring import batch_files
from pipeline.serving.batching import ScoredBatches, ScoreFunction

SUMMARY_FILE = "shadow.json"
FLIPS_FILE = "shadow_flips.csv"
NEWLY_BLOCKED, NEWLY_PASSED = "newly blocked", "newly passed"
FLIP_COLUMNS = [*QUEUE_COLUMNS, "candidate_spam_probability", "scored_in"]
LARGEST_FLIPS = 10
SPAM = "spam"


@dataclass(frozen=True)
class ShadowPolicy:
    """``[PromoteVersion]``'s shadow settings."""

    days: int = 7                    # the most recent scored days compared; 0: no shadow step
    max_messages: int = 20_000       # at most this many of their messages, newest day first
    gate: bool = False               # refuse a candidate that newly blocks too much
    max_newly_blocked: float = 0.002  # of the messages the live version passed


@dataclass(frozen=True)
class Side:
    """One version in a comparison: what to call it and its signature."""

    name: str                 # "version 3", or "candidate <export id>"
    version: int | None       # its version number, if published
    score: ScoreFunction


def recent_scored_messages(scores_root: Path, days: int, max_messages: int,
                           chunk_rows: int = 50_000
                           ) -> tuple[list[str], list[str], Iterator[pd.DataFrame]]:
    """The scored files of the ``days`` most recent days under ``scores_root``
    (``scores/<date>/``), newest day first, as ``id``/``text``/``scored_in`` chunks of at
    most ``max_messages`` rows in all. Also the files found (``<date>/<name>``), and the
    list of those actually read, which fills as the chunks are read."""
    folders = sorted((folder for folder in scores_root.iterdir()
                      if folder.is_dir() and drift.is_iso_date(folder.name)),
                     key=lambda folder: folder.name, reverse=True) if scores_root.is_dir() else []
    scored_days = [files for files in map(_scores_files, folders) if files][:max(days, 0)]
    files = [path for day in scored_days for path in day]
    read: list[str] = []  # filled as the chunks are read: the files actually compared

    def chunks() -> Iterator[pd.DataFrame]:
        left = max_messages
        for path in files:
            if left <= 0:
                return
            read.append(f"{path.parent.name}/{path.name}")
            for chunk in batch_files.read_scores(path, chunk_rows):
                chunk = chunk.head(left)
                left -= len(chunk)
                yield chunk[["id", "text"]].assign(scored_in=read[-1])
                if left <= 0:
                    return

    return [f"{path.parent.name}/{path.name}" for path in files], read, chunks()


def _scores_files(folder: Path) -> list[Path]:
    """BatchScore's outputs in a day's folder: ``<name>.csv`` and ``<name>.parquet`` files
    and Spark's ``<name>.parquet`` datasets; not the records of their inputs, the parts of
    a sharded run (``<name>.shards/``, joined into the scores file) nor temporaries."""
    return sorted(path for path in folder.iterdir() if not path.name.startswith(".")
                  and path.suffix in (".csv", ".parquet"))


def compare(chunks: Iterable[pd.DataFrame], baseline: Side, candidate: Side, folder: Path,
            batch_size: int = 4096, concurrent_batches: int = 2,
            about: dict | None = None) -> dict:
    """Score every chunk (``id``, ``text``, optional ``scored_in``) with both sides; write
    the flip file and then the summary, with ``about`` (what was compared) in it, into
    ``folder`` (each replaced whole); return the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    tally = _Tally()
    with atomic_path(folder / FLIPS_FILE) as flips_path:
        write_spreadsheet_csv(pd.DataFrame(columns=FLIP_COLUMNS), flips_path, ("id", "text"))
        in_flight: deque = deque()
        with ThreadPoolExecutor(max(concurrent_batches, 1), "shadow") as pool:
            for chunk in chunks:
                texts = chunk["text"].tolist()
                in_flight.append((chunk, ScoredBatches(texts, baseline.score, batch_size, pool),
                                  ScoredBatches(texts, candidate.score, batch_size, pool)))
                if len(in_flight) > 1:  # the next chunk's batches start before these end
                    tally.add(*in_flight.popleft(), baseline, flips_path)
            while in_flight:
                tally.add(*in_flight.popleft(), baseline, flips_path)
    summary = {**(about or {}), **tally.summary(baseline, candidate, folder / FLIPS_FILE)}
    with atomic_path(folder / SUMMARY_FILE) as temporary:
        Path(temporary).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    return summary


class _Tally:
    """Counts, histograms and the largest flips, chunk by chunk."""

    def __init__(self):
        self.messages = 0
        self.spam = {"baseline": 0, "candidate": 0}
        self.probability_sum = {"baseline": 0.0, "candidate": 0.0}
        self.histograms = {"baseline": [0] * (len(drift.BIN_EDGES) - 1),
                           "candidate": [0] * (len(drift.BIN_EDGES) - 1)}
        self.flips = {NEWLY_BLOCKED: 0, NEWLY_PASSED: 0}
        self.largest: list[tuple[float, int, dict]] = []  # a heap of the largest flips
        self._flips_seen = 0

    def add(self, chunk: pd.DataFrame, baseline_batches: ScoredBatches,
            candidate_batches: ScoredBatches, baseline: Side, flips_path: Path) -> None:
        scored = {"baseline": baseline_batches.result(),
                  "candidate": candidate_batches.result()}
        self.messages += len(chunk)
        spam = {}
        for side, (probabilities, labels) in scored.items():
            spam[side] = np.asarray(labels) == SPAM
            self.spam[side] += int(spam[side].sum())
            self.probability_sum[side] += float(np.sum(probabilities, dtype=np.float64))
            self.histograms[side] = [a + b for a, b in zip(
                self.histograms[side], drift.score_histogram(probabilities))]
        blocked = spam["candidate"] & ~spam["baseline"]
        passed = spam["baseline"] & ~spam["candidate"]
        self.flips[NEWLY_BLOCKED] += int(blocked.sum())
        self.flips[NEWLY_PASSED] += int(passed.sum())
        flipped = blocked | passed
        if not flipped.any():
            return
        before, after = scored["baseline"][0][flipped], scored["candidate"][0][flipped]
        rows = chunk.loc[flipped]
        flips = pd.DataFrame({
            "id": rows["id"].astype(str).to_numpy(), "text": rows["text"].to_numpy(),
            "spam_probability": np.round(before.astype(float), 6),
            "model_version": baseline.version if baseline.version is not None else "",
            "reason": np.where(blocked[flipped], NEWLY_BLOCKED, NEWLY_PASSED), "label": "",
            "candidate_spam_probability": np.round(after.astype(float), 6),
            "scored_in": rows["scored_in"].to_numpy() if "scored_in" in rows else ""})
        write_spreadsheet_csv(flips[FLIP_COLUMNS], flips_path, ("id", "text"), append=True)
        for record in flips.to_dict("records"):
            self._flips_seen += 1  # among equal changes, the first flips are kept
            change = abs(record["candidate_spam_probability"] - record["spam_probability"])
            item = (change, -self._flips_seen, record)
            if len(self.largest) < LARGEST_FLIPS:
                heapq.heappush(self.largest, item)
            else:
                heapq.heappushpop(self.largest, item)

    def summary(self, baseline: Side, candidate: Side, flips_file: Path) -> dict:
        n = self.messages
        passed, blocked = n - self.spam["baseline"], self.spam["baseline"]

        def side(key: str, who: Side) -> dict:
            return {"name": who.name, "version": who.version, "spam": self.spam[key],
                    "spam_share": self.spam[key] / n if n else None,
                    "mean_probability": self.probability_sum[key] / n if n else None,
                    "histogram": self.histograms[key]}

        largest = [{"id": r["id"], "text": r["text"], "change": r["reason"],
                    "baseline_probability": r["spam_probability"],
                    "candidate_probability": r["candidate_spam_probability"],
                    "scored_in": r["scored_in"]}
                   for _, _, r in sorted(self.largest, key=lambda item: -item[0])]
        return {
            "messages": n,
            "baseline": side("baseline", baseline),
            "candidate": side("candidate", candidate),
            "newly_blocked": {"count": self.flips[NEWLY_BLOCKED],
                              "share": self.flips[NEWLY_BLOCKED] / n if n else None,
                              "share_of_passed": (self.flips[NEWLY_BLOCKED] / passed
                                                  if passed else None)},
            "newly_passed": {"count": self.flips[NEWLY_PASSED],
                             "share": self.flips[NEWLY_PASSED] / n if n else None,
                             "share_of_blocked": (self.flips[NEWLY_PASSED] / blocked
                                                  if blocked else None)},
            "psi": (drift.population_stability_index(self.histograms["baseline"],
                                                     self.histograms["candidate"])
                    if n else None),
            "largest_flips": largest,
            "flips_file": str(flips_file),
        }


class PromotionShadow:
    """The promotion's shadow step (``promotion.promote``'s ``shadow``): the candidate and
    the live version on the recent scored days under ``scores_root``, written into
    ``folder``. Returns the audit entry and the gate's reason to refuse, if any; its
    ``headline`` says what it found, for the task's status line."""

    def __init__(self, scores_root: Path, policy: ShadowPolicy, folder: Path, export_id: str,
                 status: Callable[[str], None] = lambda message: None):
        self.scores_root, self.policy, self.folder = scores_root, policy, folder
        self.export_id, self.status = export_id, status
        self.headline = ""

    def __call__(self, candidate_score: ScoreFunction, live: int, live_score: ScoreFunction
                 ) -> tuple[dict, str | None]:
        policy, scores = self.policy, self.scores_root
        found, read, chunks = recent_scored_messages(scores, policy.days, policy.max_messages)
        if not found:
            note = f"no scored days under {scores} yet: nothing to compare, it passes"
            self.headline = f"shadow: {note}"
            self.status(self.headline)
            return {"messages": 0, "note": note}, None
        self.status(f"shadow: the candidate and version {live} on up to "
                    f"{policy.max_messages:,} messages of the last {policy.days} scored days")
        try:
            summary = compare(chunks, Side(f"version {live}", live, live_score),
                              Side(f"candidate {self.export_id}", None, candidate_score),
                              self.folder,
                              about={"export_id": self.export_id,
                                     "scored_files": read,  # filled as the chunks are read
                                     "max_messages": policy.max_messages})
        except Exception as error:  # noqa: BLE001 - a scores file someone else wrote
            note = (f"could not compare on the scored days ({type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}); fix or remove "
                    f"that file under {scores}, or set [PromoteVersion] shadow_days = 0")
            self.headline = f"shadow: {note}"
            # with the rule off the summary only informs; with it on, a refusal that
            # --PromoteVersion-force can override
            return {"messages": 0, "note": note}, (
                f"shadow scoring: {note}" if policy.gate else None)
        self.headline = f"shadow against version {live}: {headline(summary)}"
        self.status(self.headline)
        return audit_entry(summary), refusal(summary, policy)


def audit_entry(summary: dict) -> dict:
    """The figures the audit log keeps of a summary (no message texts)."""
    return {"messages": summary["messages"], "psi": summary.get("psi"),
            "newly_blocked": summary.get("newly_blocked"),
            "newly_passed": summary.get("newly_passed"),
            "summary_file": str(Path(summary["flips_file"]).with_name(SUMMARY_FILE))
            if "flips_file" in summary else None,
            **({"note": summary["note"]} if "note" in summary else {})}


def refusal(summary: dict, policy: ShadowPolicy) -> str | None:
    """The gate's reason to refuse on the shadow summary, if its rule is on and exceeded."""
    share = summary["newly_blocked"]["share_of_passed"]
    if not policy.gate or share is None or share <= policy.max_newly_blocked:
        return None
    count = summary["newly_blocked"]["count"]
    passed = summary["messages"] - summary["baseline"]["spam"]
    return (f"shadow scoring: the candidate newly blocks {count:,} of the {passed:,} recent "
            f"messages {summary['baseline']['name']} passed ({share:.2%}, above [PromoteVersion] "
            f"shadow_max_newly_blocked {policy.max_newly_blocked:.2%}); read "
            f"{summary['flips_file']}")


def headline(summary: dict) -> str:
    """One line: messages compared and flips (for status lines and the console)."""
    if not summary["messages"]:
        return "no messages to compare"
    return (f"{summary['messages']:,} messages: {summary['newly_blocked']['count']:,} newly "
            f"blocked, {summary['newly_passed']['count']:,} newly passed, "
            f"PSI {summary['psi']:.3f}")


def table(summary: dict) -> str:
    """The summary for a terminal."""
    base, cand = summary["baseline"], summary["candidate"]
    lines = [f"{base['name']} -> {cand['name']} on {summary['messages']:,} messages"]
    if summary["messages"]:
        lines += [
            f"  labelled spam:  {base['spam']:,} ({base['spam_share']:.2%}) -> "
            f"{cand['spam']:,} ({cand['spam_share']:.2%})",
            f"  newly blocked:  {summary['newly_blocked']['count']:,} "
            f"({_share(summary['newly_blocked']['share_of_passed'])} of those "
            f"{base['name']} passed)",
            f"  newly passed:   {summary['newly_passed']['count']:,} "
            f"({_share(summary['newly_passed']['share_of_blocked'])} of those "
            f"{base['name']} blocked)",
            f"  score PSI:      {summary['psi']:.4f}"]
        for flip in summary["largest_flips"][:5]:
            text = flip["text"] if len(flip["text"]) <= 60 else flip["text"][:57] + "..."
            lines.append(f"    {flip['change']}: {flip['baseline_probability']:.3f} -> "
                         f"{flip['candidate_probability']:.3f}  {json.dumps(text, ensure_ascii=False)}")
    lines.append(f"  summary: {Path(summary['flips_file']).with_name(SUMMARY_FILE)}")
    lines.append(f"  flips, to label: {summary['flips_file']}")
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
