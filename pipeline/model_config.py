"""The classifier's hyperparameters and their defaults: the one place they are set.

``TrainRNN``'s parameters take their defaults from :data:`DEFAULTS`; ``luigi.cfg`` and
the command line override them. No TensorFlow here, so the Luigi tasks can read it
without loading TensorFlow. Why each default was chosen (with the measurements) is in the
README, "Model quality".
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

RNN_TYPES = ("gru", "lstm", "simple")
POOLINGS = ("last", "max")
OPTIMIZERS = ("adam", "rmsprop")


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters; every field is a setting of ``[TrainRNN]``."""

    rnn_type: str = "gru"             # gru | lstm | simple (the textbook's basic RNN cell)
    bidirectional: bool = False
    embedding_dim: int = 128
    rnn_units: int = 32
    pooling: str = "last"             # last (final state) | max (max over time)
    dropout: float = 0.3
    word_dropout: float = 0.7         # share of known words replaced by "unknown" in training
    embedding_dropout: float = 0.3    # share of embedding channels dropped for a whole message
    max_length: int = 60              # tokens kept per message
    optimizer: str = "adam"           # adam | rmsprop
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 40                  # upper bound, with early stopping
    early_stopping_patience: int = 5  # 0 trains every epoch, as the textbook recipe does
    seed: int = 0
    ensemble_size: int = 1            # members trained with seeds seed*size .. seed*size+size-1
    char_gram_buckets: int = 50_000   # hashed character n-grams read beside the words (0: off)
    char_gram_dim: int = 4            # size of the character n-gram summary
    word_branch_dropout: float = 0.3  # share of training messages read by n-grams alone
    word_grams: int = 2               # the member's hashed word 1-grams (1) or 1-2-grams (2)
    ngram_member: float = 0.15        # weight of the n-gram member's log-odds (0: no member)
    teacher_weight: float = 0.3       # loss weight of the head learning the SVM's score (0: off)
    teacher_squash: float = 3.0       # the SVM margin m becomes 1 / (1 + exp(-squash * m))
    adversarial_epsilon: float = 0.0  # adversarial step on the embeddings, x their norm (0: off)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULTS = ModelConfig()
