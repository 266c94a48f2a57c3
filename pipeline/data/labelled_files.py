"""Files of labelled messages: the one reader behind extra training sources
(``[DownloadCorpus] extra_sources``) and evaluation sets (``[TrainRNN] evaluation_sets``).

Accepted formats, UTF-8 (a byte-order mark is allowed):

- ``label<TAB>text`` lines with no header, like ``SMSSpamCollection``;
- CSV (``.csv``) or TSV with a header naming ``label`` and ``text`` columns; other columns
  are ignored, so a labelled copy of a review queue file is read as it is;
- JSON Lines (``.jsonl``, ``.ndjson``, or a first line that starts with ``{``): one object
  per line with ``label`` and ``text`` keys.

Text is data: only ``\n`` and ``\r\n`` end a line. A lone ``\r``, U+0085, U+2028, U+2029,
``\x0b``, ``\x0c`` and ``\x1c``-``\x1e`` (where ``str.splitlines`` would also break) stay in
the message, so ``ham<TAB>Haha<U+0085>I know`` is one message.

A file whose lines end with a lone ``\r`` (classic Mac OS) has no ``\n`` at all: it is
refused with the command that converts it, rather than read as one message.

Spreadsheets evaluate cells that start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return, so the review queue file holds such texts with a leading apostrophe
(``pipeline.data.spreadsheet_cells``, OWASP "CSV injection"). A labelled copy of a review file,
recognised by its ``model_version`` and ``reason`` columns, has each text cell restored
(:func:`~pipeline.spreadsheet_cells.restore_cell`), so it gives back the exact texts; every
other file is read as it is.

Labels are ``ham`` or ``spam`` in any case. Anything else, an empty text, a missing
column, bytes that are not UTF-8, NUL bytes or an empty file is an error that names the
file and the line: a labelled row is never skipped without a word.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from pipeline.data.spreadsheet_cells import restore_cell

LABELS = ("ham", "spam")
# The columns that tell a labelled copy of a review file (review_queue.QUEUE_COLUMNS),
# whose text cells were neutralised for spreadsheets
REVIEW_FILE_COLUMNS = ("model_version", "reason")
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


class LabelledFileError(ValueError):
    """A labelled file cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class LabelledMessages:
    """The messages of one file, in file order."""

    name: str              # the file name without its extension
    location: str          # the path or URL it was read from
    sha256: str            # of the file's bytes
    lines: list[int]       # line of each message in the file (its first line, for CSV)
    texts: list[str]
    labels: np.ndarray     # True for spam

    def describe(self) -> dict:
        return {"location": self.location, "sha256": self.sha256,
                "messages": len(self.texts), "spam": int(self.labels.sum())}


def _path_of(location: str) -> PurePosixPath:
    path = urllib.parse.urlsplit(location).path if "://" in location else location
    return PurePosixPath(path.replace("\\", "/"))


def name_of(location: str) -> str:
    """A file's name without folder and extension, for a path or a URL."""
    return _path_of(location).stem


def parse_labelled(data: bytes, location: str, setting: str) -> LabelledMessages:
    """Read the labelled messages in ``data``, the bytes of ``location``.

    ``setting`` names where the file was configured (e.g. ``[DownloadCorpus]
    extra_sources``) so that an error says what to fix.
    """
    try:
        return _parse(data, location)
    except LabelledFileError as error:
        raise LabelledFileError(f"{error} (file given in {setting})") from None


def _parse(data: bytes, location: str) -> LabelledMessages:
    if not data.strip():
        raise LabelledFileError(f"{location} is empty: it holds no labelled messages")
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise LabelledFileError(
            f"{location}, line {line}: NUL bytes; this is not a text file (a spreadsheet or a "
            "UTF-16 export?). Save it as UTF-8 text: label<TAB>text lines, CSV, TSV or "
            "JSON Lines")
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise LabelledFileError(
            f"{location}, line {line}: byte {data[error.start]:#04x} is not UTF-8 (Latin-1 or "
            "Windows-1252?); re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8"
        ) from None
    if "\r" in content and "\n" not in content:
        raise LabelledFileError(
            f"{location}: its lines end with a lone carriage return (classic Mac OS) and only "
            "\\n or \\r\\n end a line, so it would be one message; convert it, e.g. "
            "tr '\\r' '\\n' < old > new")
    rows = _rows(content, location)
    if not rows:
        raise LabelledFileError(f"{location} holds no labelled messages")
    lines, texts, labels = [], [], []
    for line, label, message in rows:
        value = label.strip().lower()
        if value not in LABELS:
            raise LabelledFileError(
                f"{location}, line {line}: label {label!r} is not 'ham' or 'spam'"
                + (": label every row, or delete the rows you did not label"
                   if not value else ""))
        if not message.strip():
            raise LabelledFileError(f"{location}, line {line}: the text is empty")
        lines.append(line)
        texts.append(message)
        labels.append(value == "spam")
    return LabelledMessages(name_of(location), location, hashlib.sha256(data).hexdigest(),
                            lines, texts, np.array(labels, bool))


def _rows(content: str, location: str) -> list[tuple[int, str, str]]:
    """``(line number, label, text)`` of each non-blank record."""
    suffix = _path_of(location).suffix.lower()
    first = next(_lines(content.lstrip()), (0, ""))[1]
    if suffix in JSON_LINES_SUFFIXES or first.startswith("{"):
        return _json_lines(content, location)
    delimiter = "," if suffix == ".csv" else "\t"
    header = [name.strip().lower() for name in first.split(delimiter)]
    # 'ham<TAB>text' names a column only if its first field is not a label: a first
    # message whose text is "Text" is data, as every later line would be.
    names_columns = ("label" in header or "text" in header) and header[0] not in LABELS
    if names_columns or suffix == ".csv":
        return _table_rows(content, delimiter, location)
    rows = []
    for number, line in _lines(content):
        if not line.strip():
            continue
        label, tab, message = line.partition("\t")
        if not tab:
            raise LabelledFileError(
                f"{location}, line {number}: no tab between label and text (expected "
                "'ham<TAB>text', a header with label and text columns, or JSON Lines)")
        rows.append((number, label, message))
    return rows


def _lines(content: str):
    """``(line number, line)`` of each line: lines end at ``\n`` only, and lose one
    ``\r`` before it (``\r\n``); other line breaks ``str.splitlines`` knows are data."""
    for number, line in enumerate(content.split("\n"), start=1):
        yield number, line[:-1] if line.endswith("\r") else line


def _table_rows(content: str, delimiter: str, location: str) -> list[tuple[int, str, str]]:
    try:
        return _table_fields(content, delimiter, location)
    except csv.Error as error:
        raise LabelledFileError(f"{location} is not valid {'CSV' if delimiter == ',' else 'TSV'}"
                                f": {error}") from None


def _table_fields(content: str, delimiter: str, location: str) -> list[tuple[int, str, str]]:
    # The csv module ends a row at a lone \r even in lines that end at \n only: a lone \r
    # becomes a character the file does not hold while it parses, and \r again after.
    stand_in = "\r"
    if re.search("\r(?!\n)", content):
        stand_in = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in content)
        content = re.sub("\r(?!\n)", stand_in, content)

    def restored(field: str) -> str:
        return field.replace(stand_in, "\r")

    reader = csv.reader(io.StringIO(content, newline="\n"), delimiter=delimiter)
    header = [restored(name).strip().lower() for name in next(reader, [])]
    missing = [column for column in ("label", "text") if column not in header]
    if missing:
        raise LabelledFileError(
            f"{location} has no {' or '.join(repr(c) for c in missing)} column (its header is "
            f"{header}); it needs 'label' and 'text' columns, or no header and "
            "'ham<TAB>text' lines")
    label_at, text_at = header.index("label"), header.index("text")
    review_file = set(REVIEW_FILE_COLUMNS) <= set(header)
    rows = []
    start = reader.line_num + 1
    for fields in reader:
        line, start = start, reader.line_num + 1
        if not any(field.strip() for field in fields):
            continue
        if len(fields) <= max(label_at, text_at):
            raise LabelledFileError(
                f"{location}, line {line}: {len(fields)} fields, expected {len(header)} as in "
                "its header")
        text = restored(fields[text_at])
        rows.append((line, restored(fields[label_at]),
                     restore_cell(text) if review_file else text))
    return rows


def _json_lines(content: str, location: str) -> list[tuple[int, str, str]]:
    rows = []
    for number, line in _lines(content):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise LabelledFileError(f"{location}, line {number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict) or "label" not in record or "text" not in record:
            raise LabelledFileError(
                f"{location}, line {number}: expected an object with 'label' and 'text' keys")
        if not isinstance(record["text"], str) or not isinstance(record["label"], str):
            raise LabelledFileError(f"{location}, line {number}: 'label' and 'text' must be "
                                    "strings")
        rows.append((number, record["label"], record["text"]))
    return rows
