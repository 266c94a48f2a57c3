"""BatchScore's Spark engine (``--engine spark``): Apache Spark reads and scores the
input (files, folders of part files, globs, cluster URIs) into a Parquet dataset, on the
master of ``[spark]``."""
from __future__ import annotations

from pathlib import Path

import luigi

from pipeline.atomic_output import atomic_directory
from pipeline.serving import model_base
from pipeline.settings import serving_base
from pipeline.tasks.data import DownloadCorpus
from pipeline.tasks.scoring import ScoringTask


class SparkSettings(luigi.Config):
    """``[spark]``: where BatchScore --engine spark runs (``--spark-master`` ...)."""

    @classmethod
    def get_task_family(cls) -> str:
        return "spark"  # the section's name, not the class's

    master = luigi.Parameter(default="local[2]",
                             description="Spark master URL: local[N], spark://host:7077, "
                                         "yarn, k8s://...")
    conf = luigi.DictParameter(default={}, description="Spark settings, e.g. "
                                                       '{"spark.executor.memory": "4g"}.')


class InputLocationTarget(luigi.Target):
    """Messages for the Spark engine: a file, a folder of part files, a glob, or a URI of
    the cluster's file systems (hdfs://, s3a://, gs://: Spark itself checks those)."""

    def __init__(self, location: str):
        self.path = location

    def exists(self) -> bool:
        from pipeline.scoring.spark_engine import is_remote, local_files

        return is_remote(self.path) or bool(local_files(self.path))


class MessagesLocation(luigi.ExternalTask):
    """A batch of messages where Spark reads it (see InputLocationTarget)."""

    path = luigi.Parameter()

    def output(self):
        return InputLocationTarget(self.path)


class ScoreOnSpark(ScoringTask):
    """BatchScore's Spark engine: the live version's ``serving_default`` signature on the
    master of ``[spark]``, writing a Parquet dataset."""

    def messages_task(self) -> luigi.Task:
        """Where Spark reads the messages; without an input, the corpus, so that ``run()``
        can say that the test split is the local engine's."""
        return MessagesLocation(self.messages_path) if self.messages_path else DownloadCorpus()

    def run(self):
        """Score with Spark into a Parquet dataset, published whole or not at all.

        The SparkSession is started here rather than through luigi.contrib.spark's
        PySparkTask: that one pickles the task and starts it with spark-submit (seconds
        more, and the working directory is not on its sys.path); here the live version is
        resolved and the output published in this process, as with the local engine.
        """
        from pipeline.scoring import spark_engine
        from pipeline.scoring.input_stamp import input_stamp

        if not self.messages_path:
            raise ValueError("--engine spark scores an --input (or [BatchScore] "
                             "input_pattern): the corpus test split is for the local engine")
        if self.shards > 1:
            raise ValueError("--shards is for the local engine; Spark splits the input "
                             "into tasks itself (see [spark] conf)")
        # the input as this run found it; checked again before the scores are published
        self._stamp = input_stamp(self.messages_path)
        version = model_base.live_version(serving_base())
        model_folder = model_base.version_folder(serving_base(), version)
        settings = SparkSettings()
        self.status(f"starting Spark on {settings.master}")
        session = spark_engine.spark_session(settings.master, dict(settings.conf),
                                              f"spam_ham BatchScore {self.date}")
        try:
            with atomic_directory(Path(self.output().path)) as folder:
                rows = spark_engine.score_with_spark(
                    session, self.messages_path, model_folder, version,
                    folder, self.batch_size, on_progress=self._report_tasks)
                self._record_input(rows)
        finally:
            session.stop()
        self.progress(100)
        self.status(f"scored {rows:,} rows with version {version} on Spark")

    def _report_tasks(self, done: int, total: int) -> None:
        self.progress(round(100 * done / max(total, 1)))
        self.status(f"Spark: {done}/{total} tasks of the running stages done")
