"""The vocabulary: tokens of the training split, counted with the serving-time standardization."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.data import text


def build_vocabulary(counts: Counter, min_count: int, max_size: int) -> list[str]:
    """Tokens seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
    kept = [(token, n) for token, n in counts.items() if n >= min_count]
    kept.sort(key=lambda item: (-item[1], item[0]))
    return [token for token, _ in kept[:max_size]]


def coverage(counts: Counter, vocabulary: list[str]) -> float:
    """Share of the token occurrences in ``counts`` that the vocabulary knows."""
    known = set(vocabulary)
    total = sum(counts.values())
    return sum(n for token, n in counts.items() if token in known) / total if total else 0.0


def vocabulary_from_texts(train_texts: list[str], validation_texts: list[str],
                          min_count: int, max_size: int) -> tuple[list[str], Counter, dict]:
    """The vocabulary, the training counts, and statistics including validation coverage."""
    train_counts = text.count_tokens(train_texts)
    vocabulary = build_vocabulary(train_counts, min_count, max_size)
    stats = {
        "size": len(vocabulary),
        "distinct_training_tokens": len(train_counts),
        "min_count": min_count,
        "max_size": max_size,
        "training_coverage": coverage(train_counts, vocabulary),
        "validation_coverage": coverage(text.count_tokens(validation_texts), vocabulary),
    }
    return vocabulary, train_counts, stats


def write_vocabulary(handle, vocabulary: list[str], counts: Counter) -> None:
    """One ``token<TAB>count`` line per token, in id order (id = line number + 1)."""
    for token in vocabulary:
        handle.write(f"{token}\t{counts[token]}\n")


def read_vocabulary(path: Path | str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n").split("\t", 1)[0] for line in handle if line.strip()]
