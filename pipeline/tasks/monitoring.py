"""ReviewQueue and MonitorScores: what a day's scores say, read from BatchScore's output
for that day."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import luigi

from pipeline.atomic_output import atomic_path
from pipeline.data import corpus
from pipeline.scoring import batch_files
from pipeline.serving import model_base
from pipeline.settings import PipelineSettings, outputs_root, serving_base
from pipeline.tasks.base import StatusReporting, TodayParameter, json_dump
from pipeline.tasks.data import DownloadCorpus
from pipeline.tasks.batch_score import BatchScore

logger = logging.getLogger("luigi-interface")


class DayOfScores(StatusReporting):
    """A task that reads one day's scores: BatchScore's output for ``date`` and ``input``
    (the same parameters as BatchScore, so it runs the scoring first when needed)."""

    date = TodayParameter(description="The day to read (default: today).")
    input = luigi.Parameter(default="", description="The messages BatchScore scored for "
                                                    "that day (default: as BatchScore).")
    output_kind: str = ""
    suffix: str = ""

    def scoring(self) -> BatchScore:
        return BatchScore(date=self.date, input=self.input)

    def requires(self):
        return self.scoring()

    def output(self):
        return luigi.LocalTarget(str(outputs_root() / self.output_kind / self.date.isoformat()
                                     / f"{self.scoring().output_name()}{self.suffix}"))

    def day_scores(self):
        """The model version that scored the day, and the scored chunks."""
        return batch_files.read_day_scores(self.scoring().output().path)


class ReviewQueue(DayOfScores):
    """The day's messages worth a human label: those nearest the threshold, and a small
    random sample of confident ones. Label the ``label`` column (ham or spam) of a copy,
    and that copy is an extra source ([DownloadCorpus] extra_sources) as it is."""

    output_kind, suffix = "review", ".csv"
    max_rows = luigi.IntParameter(default=200, significant=False,
                                  description="Messages in the queue at most.")
    confident_rows = luigi.IntParameter(
        default=20, significant=False, description="Of those, a random sample of confident ones.")
    confident_probability = luigi.FloatParameter(
        default=0.95, significant=False,
        description="Confident: the spam or ham probability is at least this.")

    def run(self):
        from pipeline.monitoring import review_queue

        version, chunks = self.day_scores()
        threshold = self._threshold(version)
        policy = review_queue.QueuePolicy(self.max_rows, self.confident_rows,
                                          self.confident_probability,
                                          seed=self.date.toordinal())
        queue = review_queue.review_queue(chunks, threshold, policy,
                                          labelled_texts=self.labelled_texts())
        with atomic_path(self.output().path) as temporary:
            review_queue.write_review_file(queue, temporary)
        self.status(f"{len(queue)} messages to review (version {version}, "
                    f"threshold {threshold:.3f}; already labelled messages left out)")

    @staticmethod
    def labelled_texts() -> frozenset[str]:
        """Texts labelled already: in every corpus table built under outputs_root (the
        corpus and each extra source trained on so far), and in the extra sources of this
        run's configuration, read directly: scheduling DownloadCorpus for them here would
        make a day's scoring wait on a retrain."""
        tables = [path for path in sorted((outputs_root() / "corpus").glob("*/messages.csv"))
                  if not path.parent.name.startswith(".")]
        download = DownloadCorpus()
        return corpus.labelled_texts(tables, download.extra_sources, download.policy())

    @staticmethod
    def _threshold(version: int) -> float:
        try:
            return float(model_base.version_provenance(serving_base(), version)["threshold"])
        except (OSError, KeyError, ValueError):
            raise RuntimeError(
                f"the scores were made by version {version}, whose folder under "
                f"{serving_base()} is gone or has no threshold; score the day again with "
                "the live version (delete the scores file and rerun)") from None


class DriftDetected(RuntimeError):
    """A day's messages or scores differ from what the live model was trained on."""


class MonitorScores(DayOfScores):
    """Compare a day's scores and messages with what the live model saw at training
    time; write the day's figures, the monitoring report and the Prometheus file, and
    fail when a measure crosses its threshold (unless fail_on_drift is false)."""

    output_kind, suffix = "monitoring", ".json"
    max_psi = luigi.FloatParameter(default=0.3, significant=False,
                                   description="Population stability index of the scores.")
    max_oov_share = luigi.FloatParameter(
        default=0.16, significant=False,
        description="Share of word tokens outside the vocabulary.")
    max_url_share = luigi.FloatParameter(default=0.15, significant=False,
                                         description="Share of messages holding a link.")
    max_spam_share = luigi.FloatParameter(default=0.5, significant=False,
                                          description="Share of messages labelled spam.")
    min_rows = luigi.IntParameter(
        default=200, significant=False,
        description="Fewer rows: the score distribution is reported, not judged.")
    fail_on_drift = luigi.BoolParameter(
        default=True, significant=False, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="Fail the task on drift (false: only log a warning).")
    report_days = luigi.IntParameter(default=30, significant=False,
                                     description="Days shown in monitoring/report.html.")

    def run(self):
        from pipeline.serving import exported_model
        from pipeline.monitoring import drift

        version, chunks = self.day_scores()
        folder = serving_base() / str(version)
        try:
            reference, words = exported_model.read_monitoring_reference(folder)
        except OSError as error:
            raise RuntimeError(f"cannot monitor scores of version {version}: {error}") from None
        thresholds = self.thresholds()
        summary = drift.summarise_day(
            chunks, words, drift.Reference.from_dict(reference), thresholds,
            on_rows=lambda rows: self.status(f"read {rows:,} scored messages"))
        summary.update(date=self.date.isoformat(), model_version=version,
                       scores=self.scoring().output().path)
        with atomic_path(self.output().path) as temporary:
            json_dump(Path(temporary), summary)
        root = outputs_root() / self.output_kind
        releases, promotion = went_live(root)
        drift.write_report(root, thresholds, self.report_days, releases)
        drift.write_prometheus(root / f"{PipelineSettings().model_name}.prom", summary,
                               self.date.isoformat(), self.scoring().output_name(),
                               version, promotion)
        verdict = "; ".join(summary["reasons"]) or "no drift"
        self.status(f"{summary['rows']:,} rows, psi {summary['psi']:.3f}, "
                    f"oov {summary['oov_share']:.3f}: {verdict}")
        if summary["drift"]:
            message = f"drift on {self.date} ({self.output().path}): {verdict}"
            if self.fail_on_drift:
                raise DriftDetected(message)
            logger.warning(message)

    def thresholds(self):
        from pipeline.monitoring import drift

        return drift.DriftThresholds(self.max_psi, self.max_oov_share,
                                          self.max_url_share, self.max_spam_share,
                                          self.min_rows)


def went_live(report_folder: Path) -> tuple[list, dict | None]:
    """From the audit log: each version that went live (day, version, and the shadow
    summary of its promotion, linked relative to ``report_folder``), and the flip shares
    of the last promotion that ran shadow scoring (for the Prometheus file)."""
    from pipeline.monitoring import drift

    releases, promotion = [], None
    for record in model_base.read_audit(serving_base()):
        if record.get("event") not in ("promoted", "rolled_back"):
            continue
        shadow = record.get("shadow") or {}
        summary = shadow.get("summary_file")
        headline = ""
        promotion = None  # the newest version's, or none (a rollback, no shadow step)
        if shadow.get("messages"):
            headline = (f"{shadow['newly_blocked']['count']:,} newly blocked, "
                        f"{shadow['newly_passed']['count']:,} newly passed of "
                        f"{shadow['messages']:,}")
            promotion = {"version": record["version"], "shadow_messages": shadow["messages"],
                         "newly_blocked_share": shadow["newly_blocked"]["share_of_passed"],
                         "newly_passed_share": shadow["newly_passed"]["share_of_blocked"]}
        releases.append(drift.Release(
            date=record["time"][:10], version=record["version"], event=record["event"],
            shadow_href=os.path.relpath(Path(summary).resolve(), report_folder.resolve())
            if summary and headline else None, shadow_headline=headline))
    return releases, promotion
