"""TrainRNN: the classifier trained, its threshold chosen on validation, measured on test
and on the evaluation sets; ``[model]`` holds the architecture's settings."""
from __future__ import annotations

import hashlib
import json
import logging

import luigi

from pipeline.atomic_output import atomic_directory
from pipeline.data import corpus
from pipeline.model.config import ARCHITECTURE, TUNED, ModelConfig
from pipeline.model.config import DEFAULTS as MODEL_DEFAULTS
from pipeline.tasks.base import PipelineTask
from pipeline.tasks.data import BuildVocab, DownloadCorpus

logger = logging.getLogger(__name__)  # under "pipeline": the terminal shows it
TERMINAL_EPOCHS_EVERY = 5  # a terminal shows epoch 1 and every 5th; the log file each one


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
    # the model's tuned settings; their defaults are set in pipeline/model/config.py
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
        from pipeline.data import evaluation_sets
        from pipeline.model import training_run

        held_out = evaluation_sets.read_evaluation_sets(  # checked before training starts
            evaluation_sets.paths_from_setting(self.evaluation_sets))
        table = corpus.read_corpus_table(self.input_folder("corpus") / "messages.csv")
        with atomic_directory(self.output_folder()) as folder:
            training_run.train_and_evaluate(
                table, self.input_folder("vocab") / "vocab.tsv", self.model_config(),
                self.max_ham_blocked, self.min_threshold, folder, on_epoch=self._report_epoch,
                evaluation_sets=held_out, min_source_ham=self.min_source_ham)
        test = json.loads((self.output_folder() / "metrics.json").read_text())["test"]
        self.status(f"{len(json.loads((self.output_folder() / 'history.json').read_text()))} "
                    f"epochs; threshold {test['threshold']:.3f}: test MCC {test['mcc']:.4f}, "
                    f"spam caught {test['spam_caught']:.1%}, "
                    f"ham blocked {test['ham_blocked']:.2%}")

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
        shown = epoch == 1 or epoch % TERMINAL_EPOCHS_EVERY == 0 or epoch == self.epochs
        logger.info("TrainRNN %s", message, extra={"terminal": shown})
