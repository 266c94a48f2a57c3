"""BatchScore's engines in this process: ScoreLocally (one process, or N ScoreShard tasks
joined in input order), and what every engine shares: the parameters, the input's
checks, and the output's name (:class:`ScoringTask`). BatchScore itself, which picks the
engine, is in :mod:`pipeline.tasks.batch_score`; Spark's engine in
:mod:`pipeline.tasks.spark`."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import luigi

from pipeline.atomic_output import atomic_path
from pipeline.data import corpus
from pipeline.scoring import batch_files
from pipeline.serving import model_base
from pipeline.settings import outputs_root, serving_base
from pipeline.tasks import console
from pipeline.tasks.base import PipelineTask, StatusReporting, TodayParameter, json_dump
from pipeline.tasks.data import DownloadCorpus
from pipeline.tasks.publishing import PromoteVersion, live_model_line


class MessagesFile(luigi.ExternalTask):
    """A batch of messages provided by the user (CSV with a ``text`` column, or plain text)."""

    path = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(self.path)


class ScoringTask(PipelineTask):
    """BatchScore's parameters, the name of its output and the record of its input, shared
    by BatchScore and each engine it may pick (their ``run()`` differ)."""

    date = TodayParameter(description="Partition: scores/<date>/ (default: today).")
    input = luigi.Parameter(default="", description="Messages to score (CSV, TSV, JSON "
                                                    "Lines, Parquet or a text file).")
    input_pattern = luigi.Parameter(
        default="", significant=False,
        description="Without --input: the file for --date, e.g. incoming/{date}.csv; "
                    "empty scores the corpus's test split.")
    output_format = luigi.ChoiceParameter(choices=list(batch_files.SINKS), default="csv",
                                          description="Format of the scores file.")
    shards = luigi.IntParameter(default=1, significant=False,
                                description="Score the input as this many ScoreShard tasks.")
    batch_size = luigi.IntParameter(default=4096, significant=False)
    concurrent_batches = luigi.IntParameter(
        default=3, significant=False, description="Batches in the signature at a time.")
    chunk_rows = luigi.IntParameter(default=50_000, significant=False,
                                    description="Rows read and written at a time.")
    engine = luigi.ChoiceParameter(
        choices=["local", "spark"], default="local", significant=False,
        description="local: this process; spark: Apache Spark on [spark] master, writing a "
                    "Parquet dataset.")

    @property
    def messages_path(self) -> str:
        """The file to score: --input, else input_pattern for this date, else '' (corpus)."""
        if self.input:
            return self.input
        return self.input_pattern.format(date=self.date.isoformat()) if self.input_pattern else ""

    def messages_task(self) -> luigi.Task:
        """What provides the messages: the file, or the corpus (its test split)."""
        return MessagesFile(self.messages_path) if self.messages_path else DownloadCorpus()

    def requires(self):
        """An engine's inputs: the live version, and the messages (BatchScore, which only
        picks the engine, overrides this)."""
        return {"model": PromoteVersion(), "messages": self.messages_task()}

    def output(self):
        suffix = "parquet" if self.engine == "spark" else self.output_format
        return luigi.LocalTarget(str(outputs_root() / "scores" / self.date.isoformat()
                                     / f"{self.output_name()}.{suffix}"))

    def output_name(self) -> str:
        """``<input stem>-<path digest>-<content stamp digest>``: a file edited since it was
        scored makes a new target (see ``pipeline.scoring.input_stamp``); the corpus test
        split is named by the corpus's fingerprint."""
        from pipeline.scoring.input_stamp import input_stamp, stamp_digest
        from pipeline.scoring.spark_engine import input_stem, is_remote

        if self.messages_path:
            where = self.messages_path if is_remote(self.messages_path) else str(
                Path(self.messages_path).resolve())
            name = input_stem(self.messages_path) + "-" + hashlib.sha256(
                where.encode()).hexdigest()[:8]
            stamp = input_stamp(self.messages_path)
            return f"{name}-{stamp_digest(stamp)}" if stamp else name
        return "corpus-test-" + DownloadCorpus().fingerprint()[:8]

    def input_record(self) -> Path:
        """Beside the scores: what they were made from (``<scores>.input.json``)."""
        return Path(self.output().path + ".input.json")

    def produced(self) -> list[str]:
        """Where the scores are, their rows and the version that scored them; the live
        version."""
        path = self.output().path
        try:
            version, chunks = batch_files.read_day_scores(path)
            record = self.input_record()
            rows = (json.loads(record.read_text())["rows"] if record.is_file()
                    else sum(len(chunk) for chunk in chunks))
            what = f"{rows:,} rows, scored with version {version}"
        except batch_files.BatchInputError:
            what = "no rows"
        return [f"Scores: {console.relative(path)} ({what})", live_model_line()]

    def _write(self, fill) -> int:
        """Run ``fill(sink)`` into a temporary file of the output format; publish it whole,
        after the record of what it scored, unless the input changed meanwhile."""
        with atomic_path(self.output().path) as temporary:
            rows = fill(batch_files.open_sink(self.output_format, temporary))
            self._record_input(rows)
        return rows

    def _record_input(self, rows: int) -> None:
        """Check that the input is still what the output's name says, and write the
        record of it (before the scores are published, so scores never lack one)."""
        from pipeline.scoring.input_stamp import check_unchanged

        if not self.messages_path:
            return
        check_unchanged(self.messages_path, self._stamp)
        with atomic_path(self.input_record()) as temporary:
            json_dump(Path(temporary), {"input": self.messages_path, "files": self._stamp,
                                        "rows": rows, "scores": self.output().path})


class ScoreLocally(ScoringTask):
    """BatchScore's local engine: the live version's ``serving_default`` signature in this
    process. With ``--shards N`` the input is scored by N ScoreShard tasks (in parallel
    with ``--workers`` or several processes), joined here in input order."""

    def run(self):
        from pipeline.scoring import local_engine
        from pipeline.scoring.input_stamp import check_unchanged, input_stamp

        # the input as this run found it; checked again before the scores are published
        self._stamp = input_stamp(self.messages_path) if self.messages_path else []
        version = model_base.live_version(serving_base())
        if self.shards > 1 and self.messages_path:
            # Dynamic dependencies: the shards are cut once the live version is known, and
            # any worker of any process attached to the scheduler may run them.
            shard_tasks = [ScoreShard(date=self.date, messages_path=self.messages_path,
                                      shard=shard, shards=self.shards,
                                      chunk_rows=self.chunk_rows, model_version=version or 0,
                                      batch_size=self.batch_size,
                                      concurrent_batches=self.concurrent_batches)
                           for shard in range(self.shards)]
            parts = [Path(task.output().path) for task in shard_tasks]  # of this stamp
            yield shard_tasks
            check_unchanged(self.messages_path, self._stamp)  # before reading the parts
            self.status(f"joining {len(parts)} shards")
            rows = self._write(lambda sink: local_engine.join_shards(parts, sink))
            self.status(f"joined {rows:,} rows from {len(parts)} shards")
            return
        from pipeline.serving import exported_model

        signature = exported_model.load_live_signature(serving_base(), version,
                                                       self.concurrent_batches)
        messages = (batch_files.read_messages(self.messages_path, self.chunk_rows,
                                              on_fraction=self._report_fraction)
                    if self.messages_path else [self._test_split()])
        rows = self._write(lambda sink: local_engine.score_messages(
            messages, sink, signature, version, self.batch_size, self.concurrent_batches,
            on_progress=self._report_rows))
        self.progress(100)
        self.status(f"scored {rows:,} rows with version {version}")

    def _test_split(self):
        """The corpus test split as a scoring input (id = corpus line number)."""
        table = corpus.read_corpus_table(self.input_folder("messages") / "messages.csv")
        test = table.loc[(table.split == "test") & (table.source == corpus.CORPUS_SOURCE),
                         ["line", "text"]]
        return test.rename(columns={"line": "id"}).reset_index(drop=True)

    def _report_rows(self, rows: int) -> None:
        self.status(f"scored {rows:,} rows")

    def _report_fraction(self, fraction: float) -> None:
        self.progress(round(100 * fraction))


class ScoreShard(StatusReporting):
    """Score every ``shards``-th chunk of a batch input (chunk k goes to shard k % shards)
    with one model version; BatchScore joins the parts."""

    date = luigi.DateParameter()
    messages_path = luigi.Parameter()
    shard = luigi.IntParameter()
    shards = luigi.IntParameter()
    chunk_rows = luigi.IntParameter(description="Rows per chunk: defines the partition.")
    model_version = luigi.IntParameter()
    batch_size = luigi.IntParameter(default=4096, significant=False)
    concurrent_batches = luigi.IntParameter(default=3, significant=False)

    def requires(self):
        return {"model": PromoteVersion(), "messages": MessagesFile(self.messages_path)}

    def output(self):
        name = ScoreLocally(date=self.date, input=self.messages_path).output_name()
        return luigi.LocalTarget(str(
            outputs_root() / "scores" / self.date.isoformat() / f"{name}.shards" /
            f"part-{self.shard}-of-{self.shards}-v{self.model_version}-c{self.chunk_rows}.parquet"))

    def run(self):
        from pipeline.scoring import local_engine
        from pipeline.serving import exported_model
        from pipeline.scoring.input_stamp import check_unchanged, input_stamp

        stamp = input_stamp(self.messages_path)
        signature = exported_model.load_live_signature(
            serving_base(), self.model_version or None, self.concurrent_batches)
        chunks = local_engine.shard_chunks(
            batch_files.read_messages(self.messages_path, self.chunk_rows), self.shard,
            self.shards)
        with atomic_path(self.output().path) as temporary:
            rows = local_engine.score_messages(chunks, batch_files.ParquetSink(temporary),
                                               signature, self.model_version, self.batch_size,
                                               self.concurrent_batches,
                                               on_progress=self._report_rows)
            check_unchanged(self.messages_path, stamp)
        self.status(f"scored {rows:,} rows of shard {self.shard + 1}/{self.shards}")

    def _report_rows(self, rows: int) -> None:
        self.status(f"shard {self.shard + 1}/{self.shards}: scored {rows:,} rows")
