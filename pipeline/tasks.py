"""The Luigi tasks: DownloadCorpus -> BuildVocab -> TrainRNN -> ExportSavedModel ->
PromoteVersion -> BatchScore.

Each task only wires: read inputs, call a pure module, write outputs atomically. TensorFlow
is imported inside ``run()``, so checking a complete chain stays fast. Output folders are
named by a fingerprint of the task's significant parameters and of its upstream tasks
(as gokart does), so a changed hyperparameter or corpus makes new targets instead of
reusing stale ones. Every setting lives in luigi.cfg.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from pathlib import Path

import luigi
import luigi.tools.range  # noqa: F401 - makes RangeDaily available for backfills
from luigi.task import flatten, getpaths

from pipeline import batch_files, corpus, serving, token_rules
from pipeline.atomic_output import atomic_directory, atomic_path
from pipeline.labelled_files import name_of
from pipeline.model_config import DEFAULTS as MODEL_DEFAULTS
from pipeline.model_config import ARCHITECTURE, TUNED, ModelConfig
from pipeline.settings import PipelineSettings, outputs_root, serving_base  # noqa: F401

logger = logging.getLogger("luigi-interface")

UCI_CORPUS_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
PINNED_CORPUS_SHA256 = "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"


def _json_dump(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


class TodayParameter(luigi.DateParameter):
    """A date whose default is the day the task is instantiated, not the day its module
    was imported: a worker or scheduler process started yesterday schedules today.

    Luigi reads a parameter's default from its ``_default`` attribute; there is no
    public hook for a default computed per task (tests/test_tasks.py fails loudly if an
    upgrade changes that)."""

    @property
    def _default(self) -> dt.date:
        return dt.date.today()

    @_default.setter
    def _default(self, value) -> None:  # set by Parameter.__init__; today always wins
        pass


class StatusReporting(luigi.Task):
    """A task that reports what it is doing on the dashboard's status line."""

    def status(self, message: str) -> None:
        """Set the status line (there is none when ``run()`` is called outside a worker)."""
        if self.set_status_message:
            self.set_status_message(message)

    def progress(self, percent: int) -> None:
        """Set the progress bar (there is none outside a worker)."""
        if self.set_progress_percentage:
            self.set_progress_percentage(percent)


class PipelineTask(StatusReporting):
    """A task whose output folder carries a fingerprint of itself and all it depends on."""

    output_kind: str = ""

    def fingerprint(self) -> str:
        upstream = sorted(t.fingerprint() for t in flatten(self.requires())
                          if isinstance(t, PipelineTask))
        own = self.to_str_params(only_significant=True, only_public=True)
        payload = json.dumps([self.task_family, own, upstream, *self.rules()], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def rules(self) -> list[str]:
        """Fingerprints of code rules that decide this task's output besides its parameters
        and inputs (none for most tasks)."""
        return []

    def output(self):
        return luigi.LocalTarget(str(outputs_root() / self.output_kind / self.fingerprint()))

    def output_folder(self) -> Path:
        return Path(self.output().path)

    def input_folder(self, name: str | None = None) -> Path:
        # getpaths() is what Task.input() returns; BatchScore's --input parameter shadows it.
        targets = getpaths(self.requires())
        return Path((targets[name] if name else targets).path)


class DownloadCorpus(PipelineTask):
    """Fetch the SMS Spam Collection and any extra labelled sources, verify them, drop
    repeated texts, split each 70/10/20."""

    output_kind = "corpus"
    url = luigi.Parameter(
        default=os.environ.get("SPAM_CORPUS_URL", UCI_CORPUS_URL), significant=False,
        description="Zip archive: http(s)://, file:// or a path. Env: SPAM_CORPUS_URL.")
    sha256 = luigi.Parameter(default=PINNED_CORPUS_SHA256,
                             description="Pinned sha256 of the SMSSpamCollection member.")
    extra_sources = luigi.Parameter(
        default="", significant=False,  # their content is in the fingerprint, see rules()
        description="Comma-separated labelled files or URLs trained on beside the corpus "
                    "(optionally location#sha256=<hex>); empty: none.")
    split_seed = luigi.IntParameter(default=0, description="Seed of the stratified split.")
    max_malformed_share = luigi.FloatParameter(
        default=0.01, description="Fail when more corpus lines than this share are malformed.")
    connect_timeout = luigi.FloatParameter(default=10.0, significant=False)
    read_timeout = luigi.FloatParameter(default=60.0, significant=False)
    attempts = luigi.IntParameter(default=4, significant=False,
                                  description="Download attempts before giving up.")
    backoff_seconds = luigi.FloatParameter(default=1.0, significant=False,
                                           description="First retry delay; doubles each time.")
    max_download_bytes = luigi.IntParameter(default=50_000_000, significant=False)
    max_member_bytes = luigi.IntParameter(default=20_000_000, significant=False)

    def rules(self) -> list[str]:
        """Each extra source by name and content: changed bytes make a new corpus (and
        model); the same bytes under another folder do not."""
        return [f"{spec_name}:{digest}" for spec_name, digest in self._source_digests()]

    def _source_digests(self) -> list[tuple[str, str]]:
        """(name, sha256) of each extra source, read once per task instance: the pin when
        there is one, else the bytes' digest (a URL without a pin is downloaded here)."""
        if not hasattr(self, "_digests"):
            self._digests = [
                (name_of(spec.location),
                 spec.pinned_sha256 or hashlib.sha256(
                     corpus.fetch_source(spec, self._policy())).hexdigest())
                for spec in corpus.sources_from_setting(self.extra_sources)]
        return self._digests

    def _policy(self) -> corpus.DownloadPolicy:
        return corpus.DownloadPolicy(self.connect_timeout, self.read_timeout, self.attempts,
                                     self.backoff_seconds, self.max_download_bytes)

    def run(self):
        archive = corpus.fetch(self.url, self._policy(), on_progress=self._report_bytes)
        member = corpus.read_corpus_member(archive, self.max_member_bytes)
        digest = corpus.verify_sha256(member, self.sha256)
        sources = []
        for spec, (_, expected) in zip(corpus.sources_from_setting(self.extra_sources),
                                       self._source_digests()):
            data = corpus.fetch_source(spec, self._policy())
            if hashlib.sha256(data).hexdigest() != expected:
                raise corpus.CorpusError(
                    f"extra source {spec.location} changed while this run was being "
                    "scheduled; run again (pin it with #sha256= to notice such changes)")
            sources.append(corpus.read_source(data, spec))
        table, stats = corpus.build_corpus_table(member, self.split_seed,
                                                 self.max_malformed_share, sources)
        stats["sources"][0].update(location=self.url, sha256=digest)
        for source in stats["sources"]:
            if source.get("warning"):
                logger.warning("%s; it is kept in [DownloadCorpus] extra_sources and "
                               "trains nothing", source["warning"])
        with atomic_directory(self.output_folder()) as folder:
            corpus.write_corpus_table(table, folder / "messages.csv")
            _json_dump(folder / "stats.json", {**stats, "sha256": digest, "url": self.url})

    def _report_bytes(self, received: int, total: int | None) -> None:
        if total:
            self.progress(round(100 * received / total))
        self.status(f"downloaded {received:,} bytes"
                    + (f" of {total:,}" if total else ""))


class BuildVocab(PipelineTask):
    """Count training-split tokens with the serving-time standardization."""

    output_kind = "vocab"
    min_count = luigi.IntParameter(default=3, description="Keep tokens seen this often.")
    max_size = luigi.IntParameter(default=20000, description="Keep at most this many tokens.")

    def requires(self):
        return DownloadCorpus()

    def rules(self) -> list[str]:
        return [token_rules.fingerprint()]  # new rules, new vocabulary (and model)

    def run(self):
        from pipeline import vocabulary

        table = corpus.read_corpus_table(self.input_folder() / "messages.csv")
        words, counts, stats = vocabulary.vocabulary_from_texts(
            table.loc[table.split == "train", "text"].tolist(),
            table.loc[table.split == "validation", "text"].tolist(),
            self.min_count, self.max_size)
        with atomic_directory(self.output_folder()) as folder:
            with open(folder / "vocab.tsv", "w", encoding="utf-8") as handle:
                vocabulary.write_vocabulary(handle, words, counts)
            _json_dump(folder / "stats.json", stats)


class ModelSettings(luigi.Config):
    """``[model]``: the architecture's settings, settled by the measurements in
    bench/model_variants.md; TrainRNN's parameters are what a user tunes per run. A
    digest of these settings is part of the training target's name (``rules()``), so a
    changed setting trains a new model without crowding every task id with them."""

    @classmethod
    def get_task_family(cls) -> str:
        return "model"  # the section's name, not the class's

    word_dropout = luigi.FloatParameter(
        default=MODEL_DEFAULTS.word_dropout,
        description="Share of known words hidden as unknown in training.")
    embedding_dropout = luigi.FloatParameter(
        default=MODEL_DEFAULTS.embedding_dropout,
        description="Share of embedding channels dropped per message in training.")
    early_stopping_patience = luigi.IntParameter(
        default=MODEL_DEFAULTS.early_stopping_patience,
        description="Epochs without a better validation loss before training stops "
                    "(0: train every epoch).")
    char_gram_buckets = luigi.IntParameter(
        default=MODEL_DEFAULTS.char_gram_buckets,
        description="Hash buckets of the character n-grams (0: words only).")
    char_gram_dim = luigi.IntParameter(default=MODEL_DEFAULTS.char_gram_dim,
                                       description="Size of the character n-gram summary.")
    word_branch_dropout = luigi.FloatParameter(
        default=MODEL_DEFAULTS.word_branch_dropout,
        description="Share of training messages read by the n-grams alone.")
    word_grams = luigi.IntParameter(
        default=MODEL_DEFAULTS.word_grams,
        description="The n-gram member's hashed word 1-grams (1) or 1-2-grams (2); 0: none.")
    ngram_member = luigi.FloatParameter(
        default=MODEL_DEFAULTS.ngram_member,
        description="Weight of the n-gram member's log-odds in the output (0: no member).")
    teacher_weight = luigi.FloatParameter(
        default=MODEL_DEFAULTS.teacher_weight,
        description="Loss weight of a training-only head that learns a TF-IDF SVM's "
                    "out-of-fold score of each training message (0: no teacher).")
    teacher_squash = luigi.FloatParameter(
        default=MODEL_DEFAULTS.teacher_squash,
        description="The SVM's margin m becomes the head's target 1 / (1 + exp(-squash m)).")

    def values(self) -> dict:
        return {name: getattr(self, name) for name in ARCHITECTURE}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.values(), sort_keys=True).encode()
                              ).hexdigest()[:16]


class TrainRNN(PipelineTask):
    """Train the recurrent classifier; choose its threshold on validation; measure on test.

    Its parameters are what a user tunes per run; the architecture's settings are
    ``[model]`` (:class:`ModelSettings`)."""

    output_kind = "training"
    # the model's tuned settings; their defaults are set in pipeline/model_config.py
    embedding_dim = luigi.IntParameter(default=MODEL_DEFAULTS.embedding_dim,
                                       description="Size of each word's embedding.")
    rnn_units = luigi.IntParameter(default=MODEL_DEFAULTS.rnn_units,
                                   description="Units of the GRU.")
    dropout = luigi.FloatParameter(default=MODEL_DEFAULTS.dropout,
                                   description="Dropout before the output layer.")
    max_length = luigi.IntParameter(default=MODEL_DEFAULTS.max_length,
                                    description="Tokens kept per message.")
    learning_rate = luigi.FloatParameter(default=MODEL_DEFAULTS.learning_rate,
                                         description="Adam's learning rate.")
    batch_size = luigi.IntParameter(default=MODEL_DEFAULTS.batch_size,
                                    description="Training messages per step.")
    epochs = luigi.IntParameter(default=MODEL_DEFAULTS.epochs,
                                description="Most epochs trained (early stopping may stop "
                                            "sooner).")
    seed = luigi.IntParameter(default=MODEL_DEFAULTS.seed, description="Training seed.")
    # how the threshold is chosen, and what else is measured
    max_ham_blocked = luigi.FloatParameter(
        default=0.003, description="Target share of ham labelled spam; sets the threshold.")
    min_threshold = luigi.FloatParameter(default=0.5, description="Lowest threshold allowed.")
    min_source_ham = luigi.IntParameter(
        default=100, description="An extra source whose validation part holds at least this "
                                 "many ham also bounds the threshold (the strictest wins).")
    evaluation_sets = luigi.Parameter(
        default="", description="Comma-separated labelled files scored after training "
                                "(never trained on); empty: none.")

    def requires(self):
        return {"corpus": DownloadCorpus(), "vocab": BuildVocab()}

    def run(self):
        from pipeline import evaluation_sets, training_run

        held_out = evaluation_sets.read_evaluation_sets(  # checked before training starts
            evaluation_sets.paths_from_setting(self.evaluation_sets))
        table = corpus.read_corpus_table(self.input_folder("corpus") / "messages.csv")
        with atomic_directory(self.output_folder()) as folder:
            training_run.train_and_evaluate(
                table, self.input_folder("vocab") / "vocab.tsv", self.model_config(),
                self.max_ham_blocked, self.min_threshold, folder, on_epoch=self._report_epoch,
                evaluation_sets=held_out, min_source_ham=self.min_source_ham)

    def rules(self) -> list[str]:
        return [f"model:{ModelSettings().digest()}"]  # [model]'s settings name the target

    def model_config(self) -> ModelConfig:
        return ModelConfig(**{name: getattr(self, name) for name in TUNED},
                           **ModelSettings().values())

    def _report_epoch(self, epoch: int, logs: dict) -> None:
        self.progress(round(100 * epoch / self.epochs))
        served = (f"val_served_loss {logs['val_served_loss']:.4f}, "  # the stopping loss
                  if "val_served_loss" in logs else "")  # with the n-gram member
        message = (f"epoch {epoch}/{self.epochs}: {served}"
                   f"val_loss {logs.get('val_loss', 0):.4f}, "
                   f"val_accuracy {logs.get('val_accuracy', 0):.4f}, "
                   f"val_auc {logs.get('val_auc', 0):.4f}")
        self.status(message)
        logger.info(message)


class ExportSavedModel(PipelineTask):
    """Stage a raw-text SavedModel (threshold inside) under a non-numeric folder name."""

    output_kind = "exports"

    def requires(self):
        return {"training": TrainRNN(), "vocab": BuildVocab(), "corpus": DownloadCorpus()}

    def rules(self) -> list[str]:
        return [serving.EXPORT_LAYOUT]

    def run(self):
        import keras

        from pipeline import export, exported_model, vocabulary

        training = self.input_folder("training")
        model = keras.models.load_model(training / "model.keras", safe_mode=True)
        metrics = json.loads((training / "metrics.json").read_text())
        corpus_stats = json.loads((self.input_folder("corpus") / "stats.json").read_text())
        provenance = {
            "export_id": self.fingerprint(),
            "training_run": training.name,
            "training_parameters": TrainRNN().to_str_params(only_significant=True),
            "model_settings": ModelSettings().values(),
            "metrics": metrics,
            "corpus_sha256": corpus_stats["sha256"],
            "sources": [{key: source.get(key) for key in ("name", "location", "sha256",
                                                           "messages")}
                        for source in corpus_stats.get("sources", [])],
            "code_version": export.code_version(),
            "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        words = vocabulary.read_vocabulary(self.input_folder("vocab") / "vocab.tsv")
        with atomic_directory(self.output_folder()) as folder:
            trained_with = metrics["config"]  # the settings this model was trained with
            export.export_classifier(model, words, trained_with["max_length"],
                                     metrics["threshold"], folder, provenance,
                                     model_name=PipelineSettings().model_name,
                                     char_gram_buckets=trained_with.get("char_gram_buckets", 0),
                                     word_grams=trained_with.get("word_grams", 0))
            table = corpus.read_corpus_table(self.input_folder("corpus") / "messages.csv")
            exported_model.write_monitoring_reference(
                folder, words, corpus.texts_and_labels(table, "test")[0])


class ServedVersionTarget(luigi.Target):
    """Exists once the export ``export_id`` has been published under the model base path,
    even if its version was pruned since (a later, newer model is live then)."""

    def __init__(self, base: Path, export_id: str):
        self.base = base
        self.export_id = export_id

    def exists(self) -> bool:
        return serving.was_published(self.base, self.export_id)


class PromoteVersion(PipelineTask):
    """Smoke-test the staged export, gate it on quality, publish it as the next version.

    The gate compares the candidate with the live version on the same test split of the
    SMS Spam Collection, then on each extra source's test part, all scored through their
    serving signatures. A refused candidate fails the task with the
    reasons; the live version keeps serving and the candidate stays staged.
    """

    min_mcc = luigi.FloatParameter(default=0.90, significant=False)
    max_ham_blocked = luigi.FloatParameter(default=0.01, significant=False)
    min_spam_caught = luigi.FloatParameter(default=0.85, significant=False)
    regression_level = luigi.FloatParameter(
        default=0.05, significant=False,
        description="Significance level of the paired (McNemar) test against the live "
                    "version: a difference more likely than this by chance is no regression.")
    max_ham_blocked_rise = luigi.FloatParameter(
        default=0.002, significant=False,
        description="Net share of the test ham the candidate may newly block before a "
                    "significant difference counts as a regression.")
    max_spam_caught_drop = luigi.FloatParameter(
        default=0.02, significant=False,
        description="Net share of the test spam the candidate may newly pass before a "
                    "significant difference counts as a regression.")
    keep_versions = luigi.IntParameter(default=5, significant=False,
                                       description="Newest versions kept; 0 keeps all.")
    smoke_test = luigi.BoolParameter(default=True, significant=False,
                                     parsing=luigi.BoolParameter.EXPLICIT_PARSING)
    source_max_ham_blocked_rise = luigi.FloatParameter(
        default=0.0, significant=False,
        description="Per extra source: max_ham_blocked_rise on its test part.")
    source_max_spam_caught_drop = luigi.FloatParameter(
        default=0.0, significant=False,
        description="Per extra source: max_spam_caught_drop on its test part.")
    source_min_mcc = luigi.DictParameter(
        default={}, significant=False,
        description='Per extra source: an MCC floor, e.g. {"feedback-2026-11": 0.8}.')
    force = luigi.BoolParameter(default=False, significant=False,
                                description="Publish even if the gate refuses.")

    def requires(self):
        return {"export": ExportSavedModel(), "corpus": DownloadCorpus()}

    def output(self):
        return ServedVersionTarget(serving_base(), self.requires()["export"].fingerprint())

    def run(self):
        from pipeline import promotion

        table = corpus.read_corpus_table(self.input_folder("corpus") / "messages.csv")
        version, published = promotion.promote(
            self.input_folder("export"), serving_base(),
            self.requires()["export"].fingerprint(), table, self.policy(), self.status)
        self.status(f"{'published' if published else 'already live as'} "
                    f"version {version} under {serving_base()}")

    def policy(self):
        from pipeline import promotion, promotion_gate

        return promotion.PromotionPolicy(
            gate=promotion_gate.GateRules(self.min_mcc, self.max_ham_blocked,
                                          self.min_spam_caught, self.max_ham_blocked_rise,
                                          self.max_spam_caught_drop, self.regression_level),
            sources=promotion_gate.SourceRules(self.source_max_ham_blocked_rise,
                                               self.source_max_spam_caught_drop,
                                               dict(self.source_min_mcc)),
            keep_versions=self.keep_versions, smoke_test=self.smoke_test, force=self.force)


class MessagesFile(luigi.ExternalTask):
    """A batch of messages provided by the user (CSV with a ``text`` column, or plain text)."""

    path = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(self.path)


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
        from pipeline.spark_scoring import is_remote, local_files

        return is_remote(self.path) or bool(local_files(self.path))


class MessagesLocation(luigi.ExternalTask):
    """A batch of messages where Spark reads it (see InputLocationTarget)."""

    path = luigi.Parameter()

    def output(self):
        return InputLocationTarget(self.path)


class BatchScore(PipelineTask):
    """Score a file of messages with the live version's ``serving_default`` signature.

    With ``--shards N`` the input is scored by N ScoreShard tasks (in parallel with
    ``--workers`` or several processes), and this task joins their parts in input order.
    With ``--engine spark`` Apache Spark reads and scores the input (files, folders of
    part files, globs, cluster URIs) into a Parquet dataset, on the master of ``[spark]``.
    """

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

    def requires(self):
        if not self.messages_path:
            messages = DownloadCorpus()
        elif self.engine == "spark":
            messages = MessagesLocation(self.messages_path)
        else:
            messages = MessagesFile(self.messages_path)
        return {"model": PromoteVersion(), "messages": messages}

    def output_name(self) -> str:
        """``<input stem>-<path digest>-<content stamp digest>``: a file edited since it was
        scored makes a new target (see ``pipeline.input_stamp``); the corpus test split is
        named by the corpus's fingerprint."""
        from pipeline.input_stamp import input_stamp, stamp_digest
        from pipeline.spark_scoring import input_stem, is_remote

        if self.messages_path:
            where = self.messages_path if is_remote(self.messages_path) else str(
                Path(self.messages_path).resolve())
            name = input_stem(self.messages_path) + "-" + hashlib.sha256(
                where.encode()).hexdigest()[:8]
            stamp = input_stamp(self.messages_path)
            return f"{name}-{stamp_digest(stamp)}" if stamp else name
        return "corpus-test-" + self.requires()["messages"].fingerprint()[:8]

    def output(self):
        suffix = "parquet" if self.engine == "spark" else self.output_format
        return luigi.LocalTarget(str(outputs_root() / "scores" / self.date.isoformat()
                                     / f"{self.output_name()}.{suffix}"))

    def input_record(self) -> Path:
        """Beside the scores: what they were made from (``<scores>.input.json``)."""
        return Path(self.output().path + ".input.json")

    def run(self):
        from pipeline import scoring
        from pipeline.input_stamp import check_unchanged, input_stamp

        # the input as this run found it; checked again before the scores are published
        self._stamp = input_stamp(self.messages_path) if self.messages_path else []
        version = serving.live_version(serving_base())
        if self.engine == "spark":
            return self._run_on_spark(version)
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
            rows = self._write(lambda sink: scoring.join_shards(parts, sink))
            self.status(f"joined {rows:,} rows from {len(parts)} shards")
            return
        from pipeline import exported_model

        signature = exported_model.load_live_signature(serving_base(), version,
                                                       self.concurrent_batches)
        messages = (batch_files.read_messages(self.messages_path, self.chunk_rows,
                                          on_fraction=self._report_fraction)
                    if self.messages_path else [self._test_split()])
        rows = self._write(lambda sink: scoring.score_messages(
            messages, sink, signature, version, self.batch_size, self.concurrent_batches,
            on_progress=self._report_rows))
        self.progress(100)
        self.status(f"scored {rows:,} rows with version {version}")

    def _run_on_spark(self, version: int | None) -> None:
        """Score with Spark into a Parquet dataset, published whole or not at all.

        The SparkSession is started here rather than through luigi.contrib.spark's
        PySparkTask: that one pickles the task and starts it with spark-submit (seconds
        more, and the working directory is not on its sys.path); here the live version is
        resolved and the output published in this process, as with the local engine.
        """
        from pipeline import spark_scoring

        if not self.messages_path:
            raise ValueError("--engine spark scores an --input (or [BatchScore] "
                             "input_pattern): the corpus test split is for the local engine")
        if self.shards > 1:
            raise ValueError("--shards is for the local engine; Spark splits the input "
                             "into tasks itself (see [spark] conf)")
        model_folder = serving.version_folder(serving_base(), version)
        settings = SparkSettings()
        self.status(f"starting Spark on {settings.master}")
        session = spark_scoring.spark_session(settings.master, dict(settings.conf),
                                              f"spam_ham BatchScore {self.date}")
        try:
            with atomic_directory(Path(self.output().path)) as folder:
                rows = spark_scoring.score_with_spark(
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
        from pipeline.input_stamp import check_unchanged

        if not self.messages_path:
            return
        check_unchanged(self.messages_path, self._stamp)
        with atomic_path(self.input_record()) as temporary:
            _json_dump(Path(temporary), {"input": self.messages_path, "files": self._stamp,
                                         "rows": rows, "scores": self.output().path})

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
        name = BatchScore(date=self.date, input=self.messages_path).output_name()
        return luigi.LocalTarget(str(
            outputs_root() / "scores" / self.date.isoformat() / f"{name}.shards" /
            f"part-{self.shard}-of-{self.shards}-v{self.model_version}-c{self.chunk_rows}.parquet"))

    def run(self):
        from pipeline import exported_model, scoring
        from pipeline.input_stamp import check_unchanged, input_stamp

        stamp = input_stamp(self.messages_path)
        signature = exported_model.load_live_signature(
            serving_base(), self.model_version or None, self.concurrent_batches)
        chunks = scoring.shard_chunks(
            batch_files.read_messages(self.messages_path, self.chunk_rows), self.shard,
            self.shards)
        with atomic_path(self.output().path) as temporary:
            rows = scoring.score_messages(chunks, batch_files.ParquetSink(temporary), signature,
                                          self.model_version, self.batch_size,
                                          self.concurrent_batches,
                                          on_progress=self._report_rows)
            check_unchanged(self.messages_path, stamp)
        self.status(f"scored {rows:,} rows of shard {self.shard + 1}/{self.shards}")

    def _report_rows(self, rows: int) -> None:
        self.status(f"shard {self.shard + 1}/{self.shards}: scored {rows:,} rows")


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
        from pipeline import review_queue

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
        return corpus.labelled_texts(tables, download.extra_sources, download._policy())

    @staticmethod
    def _threshold(version: int) -> float:
        try:
            return float(serving.version_provenance(serving_base(), version)["threshold"])
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
        from pipeline import exported_model, monitoring

        version, chunks = self.day_scores()
        folder = serving_base() / str(version)
        try:
            reference, words = exported_model.read_monitoring_reference(folder)
        except OSError as error:
            raise RuntimeError(f"cannot monitor scores of version {version}: {error}") from None
        thresholds = self.thresholds()
        summary = monitoring.summarise_day(
            chunks, words, monitoring.Reference.from_dict(reference), thresholds,
            on_rows=lambda rows: self.status(f"read {rows:,} scored messages"))
        summary.update(date=self.date.isoformat(), model_version=version,
                       scores=self.scoring().output().path)
        with atomic_path(self.output().path) as temporary:
            _json_dump(Path(temporary), summary)
        root = outputs_root() / self.output_kind
        monitoring.write_report(root, thresholds, self.report_days)
        monitoring.write_prometheus(root / f"{PipelineSettings().model_name}.prom", summary,
                                    self.date.isoformat(), self.scoring().output_name(),
                                    version)
        verdict = "; ".join(summary["reasons"]) or "no drift"
        self.status(f"{summary['rows']:,} rows, psi {summary['psi']:.3f}, "
                    f"oov {summary['oov_share']:.3f}: {verdict}")
        if summary["drift"]:
            message = f"drift on {self.date} ({self.output().path}): {verdict}"
            if self.fail_on_drift:
                raise DriftDetected(message)
            logger.warning(message)

    def thresholds(self):
        from pipeline import monitoring

        return monitoring.DriftThresholds(self.max_psi, self.max_oov_share,
                                          self.max_url_share, self.max_spam_share,
                                          self.min_rows)
