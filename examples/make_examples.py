"""Write the example files of this folder from the messages below (made up, not from any
corpus). Run from the repository root: .venv/bin/python examples/make_examples.py

The same ten messages in every format BatchScore reads, with ids 1-10 (a plain text file
has no ids: its line numbers are the ids, so the other files use the same numbers), and
two labelled files: ``label<TAB>text`` lines, and a labelled copy of a review queue file.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.spreadsheet_cells import write_spreadsheet_csv

HERE = Path(__file__).resolve().parent

MESSAGES = [
    "Are we still on for lunch tomorrow? I'll book a table for 12:30",
    "WINNER!! You have been selected for a £1,000 prize. Call 09061 234567 now to claim, T&Cs apply",
    'Mum said "bring a coat", it\'s freezing out',
    "URGENT: your account is locked. Verify at http://example.com/verify within 24h or lose access",
    "",  # an empty message: an empty line in messages.txt, an empty text elsewhere
    "Café at 8? Je t'attends, bises 😊",
    "FREE entry to win a holiday for 2! Text WIN to 80086, reply STOP to opt out",
    "Running 10 mins late, sorry!! Traffic on the ring road",
    "Congratulations! You've won a free phone. Claim it: reply YES to 61610 (£1.50/msg)",
    "Can you pick up milk and bread on the way home? Thx x",
]
IDS = [str(number) for number in range(1, len(MESSAGES) + 1)]

# What an operator labelled: a review queue file (ReviewQueue's columns) with the label
# column filled in, and the same labels as label<TAB>text lines.
REVIEWED = [  # id, text, spam_probability, reason, label
    ("4", MESSAGES[3], 0.61, "near threshold", "spam"),
    ("8", MESSAGES[7], 0.38, "near threshold", "ham"),
    ("9", MESSAGES[8], 0.55, "near threshold", "spam"),
    ("12", "+44 7700 900123 is my new number, save it", 0.47, "near threshold", "ham"),
    ("3", MESSAGES[2], 0.01, "confident sample", "ham"),
    ("2", MESSAGES[1], 0.99, "confident sample", "spam"),
]
MODEL_VERSION = 3


def write_batch_inputs(folder: Path = HERE) -> None:
    with open(folder / "messages.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "text"])
        writer.writerows(zip(IDS, MESSAGES))
    with open(folder / "messages.tsv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["id", "text"])
        writer.writerows(zip(IDS, MESSAGES))
    with open(folder / "messages.jsonl", "w", encoding="utf-8", newline="") as handle:
        for id_, text in zip(IDS, MESSAGES):
            handle.write(json.dumps({"id": id_, "text": text}, ensure_ascii=False) + "\n")
    pq.write_table(pa.table({"id": pa.array(IDS, pa.string()),
                             "text": pa.array(MESSAGES, pa.string())}),
                   folder / "messages.parquet")
    (folder / "messages.txt").write_bytes(("\n".join(MESSAGES) + "\n").encode("utf-8"))


def write_labelled(folder: Path = HERE) -> None:
    review = pd.DataFrame(REVIEWED, columns=["id", "text", "spam_probability", "reason", "label"])
    review.insert(3, "model_version", MODEL_VERSION)
    # as ReviewQueue writes it (a leading + gets an apostrophe), with the labels filled in
    write_spreadsheet_csv(review, folder / "labelled-review.csv", text_columns=("id", "text"))
    lines = [f"{label}\t{text}" for _, text, _, _, label in REVIEWED]
    (folder / "labelled.tsv").write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


if __name__ == "__main__":
    write_batch_inputs()
    write_labelled()
