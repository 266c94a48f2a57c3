"""The classifier's settings and their defaults: the one place they are set.

The classifier is one architecture: word embedding -> GRU (final state), beside the mean
embedding of each message's hashed character n-grams -> dense sigmoid, plus a linear
n-gram member whose log-odds join the output, and a training-only head that learns a
TF-IDF SVM's score. Variants that lost (LSTM and simple RNN cells, bidirectional layers,
max pooling, ensembles, RMSProp, adversarial training) are gone; their history and
figures are in bench/model_variants.md.

Two groups of fields:

* :data:`TUNED`: what a user tunes, ``TrainRNN``'s parameters (``[TrainRNN]`` in
  luigi.cfg, ``--TrainRNN-epochs 5`` on the command line);
* the others: how the architecture is regularised and what it reads beside the words,
  settled by the measurements in bench/model_variants.md. They are ``[model]`` in
  luigi.cfg (``pipeline.tasks.ModelSettings``); a digest of them is part of the training
  target's name, so a changed setting still trains a new model.

No TensorFlow here, so the Luigi tasks can read it without loading TensorFlow.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ModelConfig:
    """The classifier's settings (the first group are ``TrainRNN``'s parameters)."""

    # tuned per run: TrainRNN's parameters
    embedding_dim: int = 128
    rnn_units: int = 32
    dropout: float = 0.3
    max_length: int = 60              # tokens kept per message
    learning_rate: float = 1e-3       # Adam's
    batch_size: int = 64
    epochs: int = 40                  # upper bound, with early stopping
    seed: int = 0
    # the architecture's settings: [model]
    word_dropout: float = 0.7         # share of known words replaced by "unknown" in training
    embedding_dropout: float = 0.3    # share of embedding channels dropped for a whole message
    early_stopping_patience: int = 5  # 0 trains every epoch
    char_gram_buckets: int = 50_000   # hashed character n-grams read beside the words (0: off)
    char_gram_dim: int = 4            # size of the character n-gram summary
    word_branch_dropout: float = 0.3  # share of training messages read by n-grams alone
    word_grams: int = 2               # the member's hashed word 1-grams (1) or 1-2-grams (2)
    ngram_member: float = 0.15        # weight of the n-gram member's log-odds (0: no member)
    teacher_weight: float = 0.3       # loss weight of the head learning the SVM's score (0: off)
    teacher_squash: float = 3.0       # the SVM margin m becomes 1 / (1 + exp(-squash * m))

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULTS = ModelConfig()

# The settings TrainRNN takes as parameters; every other field is a [model] setting.
TUNED = ("embedding_dim", "rnn_units", "dropout", "max_length", "learning_rate",
         "batch_size", "epochs", "seed")
ARCHITECTURE = tuple(field.name for field in fields(ModelConfig) if field.name not in TUNED)
