"""DownloadCorpus -> BuildVocab: the labelled messages, verified and split, and the
vocabulary counted on their training split."""
from __future__ import annotations

import hashlib
import logging
import os

import luigi

from pipeline.atomic_output import atomic_directory
from pipeline.data import corpus, download, token_rules
from pipeline.data.labelled_files import name_of
from pipeline.tasks.base import PipelineTask, json_dump

logger = logging.getLogger("luigi-interface")

UCI_CORPUS_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
PINNED_CORPUS_SHA256 = corpus.UCI_SHA256


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
                     corpus.fetch_source(spec, self.policy())).hexdigest())
                for spec in corpus.sources_from_setting(self.extra_sources)]
        return self._digests

    def policy(self) -> download.DownloadPolicy:
        """How hard to try, and how much to accept, when fetching (this section's settings)."""
        return download.DownloadPolicy(self.connect_timeout, self.read_timeout, self.attempts,
                                       self.backoff_seconds, self.max_download_bytes)

    def run(self):
        archive = download.fetch(self.url, self.policy(), on_progress=self._report_bytes)
        member = corpus.read_corpus_member(archive, self.max_member_bytes)
        digest = corpus.verify_sha256(member, self.sha256)
        sources = []
        for spec, (_, expected) in zip(corpus.sources_from_setting(self.extra_sources),
                                       self._source_digests()):
            data = corpus.fetch_source(spec, self.policy())
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
            json_dump(folder / "stats.json", {**stats, "sha256": digest, "url": self.url})
        self.status(f"{len(table):,} messages from {len(stats['sources'])} source(s), "
                    f"{stats['repeated_texts_dropped']:,} repeated texts dropped")

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
        from pipeline.data import vocabulary

        table = corpus.read_corpus_table(self.input_folder() / "messages.csv")
        words, counts, stats = vocabulary.vocabulary_from_texts(
            table.loc[table.split == "train", "text"].tolist(),
            table.loc[table.split == "validation", "text"].tolist(),
            self.min_count, self.max_size)
        with atomic_directory(self.output_folder()) as folder:
            with open(folder / "vocab.tsv", "w", encoding="utf-8") as handle:
                vocabulary.write_vocabulary(handle, words, counts)
            json_dump(folder / "stats.json", stats)
        self.status(f"{stats['size']:,} words, covering "
                    f"{stats['validation_coverage']:.1%} of the validation split's tokens")
