"""ExportSavedModel -> PromoteVersion: a trained model staged as a raw-text SavedModel,
smoke-tested, gated against the live version and published as the next version folder
TensorFlow Serving picks up."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import luigi

from pipeline.atomic_output import atomic_directory
from pipeline.data import corpus
from pipeline.serving import model_base
from pipeline.settings import PipelineSettings, outputs_root, serving_base
from pipeline.tasks import console
from pipeline.tasks.base import PipelineTask
from pipeline.tasks.data import BuildVocab, DownloadCorpus
from pipeline.tasks.training import ModelSettings, TrainRNN


class ExportSavedModel(PipelineTask):
    """Stage a raw-text SavedModel (threshold inside) under a non-numeric folder name."""

    output_kind = "exports"

    def requires(self):
        return {"training": TrainRNN(), "vocab": BuildVocab(), "corpus": DownloadCorpus()}

    def rules(self) -> list[str]:
        return [model_base.EXPORT_LAYOUT]

    def run(self):
        import keras

        from pipeline.serving import export
        from pipeline.serving import exported_model, model_card
        from pipeline.data import vocabulary

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
            model_card.write(folder, model_card.build(
                provenance, corpus_stats, PipelineSettings().model_name))
        self.status(f"staged as {self.output_folder().name} (threshold "
                    f"{metrics['threshold']:.3f}, test MCC {metrics['test']['mcc']:.4f})")


class ServedVersionTarget(luigi.Target):
    """Exists once the export ``export_id`` has been published under the model base path,
    even if its version was pruned since (a later, newer model is live then)."""

    def __init__(self, base: Path, export_id: str):
        self.base = base
        self.export_id = export_id

    def exists(self) -> bool:
        return model_base.was_published(self.base, self.export_id)


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
    shadow_days = luigi.IntParameter(
        default=7, significant=False,
        description="Before publishing, compare the candidate with the live version on the "
                    "messages of this many most recent scored days; 0: no shadow step.")
    shadow_max_messages = luigi.IntParameter(
        default=20_000, significant=False,
        description="At most this many of those messages, newest day first.")
    shadow_gate = luigi.BoolParameter(
        default=False, significant=False, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="Refuse a candidate that newly blocks more than shadow_max_newly_blocked "
                    "of the recent messages the live version passed.")
    shadow_max_newly_blocked = luigi.FloatParameter(
        default=0.002, significant=False,
        description="With shadow_gate: the share of those messages the candidate may newly "
                    "block.")

    def requires(self):
        return {"export": ExportSavedModel(), "corpus": DownloadCorpus()}

    def output(self):
        return ServedVersionTarget(serving_base(), self.requires()["export"].fingerprint())

    def run(self):
        from pipeline.serving import promotion

        table = corpus.read_corpus_table(self.input_folder("corpus") / "messages.csv")
        export_id = self.requires()["export"].fingerprint()
        step = self._shadow_step(export_id)
        version, published = promotion.promote(
            self.input_folder("export"), serving_base(), export_id, table, self.policy(),
            self.status, step)
        self.status(f"{'published' if published else 'already live as'} "
                    f"version {version} under {serving_base()}"
                    + (f"; {step.headline}" if step and step.headline else ""))

    def _shadow_step(self, export_id: str):
        """The promotion's shadow step (``pipeline.scoring.shadow``); None when shadow_days
        is 0."""
        from pipeline.scoring import shadow

        if self.shadow_days <= 0:
            return None
        return shadow.PromotionShadow(
            outputs_root() / "scores",
            shadow.ShadowPolicy(self.shadow_days, self.shadow_max_messages, self.shadow_gate,
                                self.shadow_max_newly_blocked),
            model_base.shadow_folder(serving_base(), export_id), export_id, self.status)

    def produced(self) -> list[str]:
        return [live_model_line()]

    def policy(self):
        from pipeline.serving import promotion
        from pipeline.serving import promotion_gate

        return promotion.PromotionPolicy(
            gate=promotion_gate.GateRules(self.min_mcc, self.max_ham_blocked,
                                          self.min_spam_caught, self.max_ham_blocked_rise,
                                          self.max_spam_caught_drop, self.regression_level),
            sources=promotion_gate.SourceRules(self.source_max_ham_blocked_rise,
                                               self.source_max_spam_caught_drop,
                                               dict(self.source_min_mcc)),
            keep_versions=self.keep_versions, smoke_test=self.smoke_test, force=self.force)


def live_model_line() -> str:
    """Which version is live and where, and whether this run published it."""
    base = serving_base()
    version = model_base.live_version(base)
    if version is None:
        return f"Model:  no version is live under {console.relative(base)}"
    since = console.began().isoformat(timespec="seconds")
    published = any(record.get("event") == "promoted" and record.get("version") == version
                    and record.get("time", "") >= since for record in model_base.read_audit(base))
    how = "published by this run" if published else "live"
    return f"Model:  version {version} ({how}) under {console.relative(base)}"
