"""The files of batch scoring, in one place: the formats ``BatchScore`` reads (CSV, TSV,
JSON Lines, Parquet, plain text: :data:`INPUT_FORMATS`) and writes (CSV, Parquet:
:data:`SINKS`, whose names are ``--BatchScore-output-format``'s choices), and reading
back what it wrote. Every reader yields ``id``/``text`` chunks in file order; a file that
cannot be read as a whole is refused with a clear error.

Text is data: only ``\n`` and ``\r\n`` end a line, never a lone ``\r`` nor the other
characters ``str.splitlines`` breaks at (U+0085, U+2028, ...). pandas' CSV parser also ends
a row at a lone ``\r``, and pandas' own ``to_csv`` leaves a ``\r`` in a field unquoted, so
a CSV/TSV file with a carriage return outside quotes is parsed with ``\n`` as the only line
end, after taking the ``\r`` of each ``\r\n`` outside quotes away (:func:`_line_feed_only`).
"""
from __future__ import annotations

import io
import json
import mmap
import re
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

OUTPUT_COLUMNS = ["id", "text", "spam_probability", "label", "model_version"]
TEXT_SUFFIXES = ("", ".txt", ".text")
INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".parquet": "parquet", **{s: "text" for s in TEXT_SUFFIXES}}


class BatchInputError(ValueError):
    """The batch input file cannot be scored as it is."""


def input_format(path: Path | str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in INPUT_FORMATS:
        raise BatchInputError(
            f"batch input {path}: unknown format {suffix!r}; use one of "
            f"{sorted(s for s in INPUT_FORMATS if s)} or a plain text file (.txt)")
    return INPUT_FORMATS[suffix]


def read_messages(path: Path | str, chunk_rows: int,
                  on_fraction: Callable[[float], None] | None = None) -> Iterator[pd.DataFrame]:
    """Yield ``id``/``text`` chunks of a batch input file, in file order.

    CSV/TSV/Parquet/JSON Lines need a ``text`` field and may carry an ``id``; rows without
    an id are numbered from 1. Plain text has one message per line (ids: line numbers).
    ``on_fraction`` gets the share of the file read so far after each chunk.
    """
    path = Path(path)
    kind = input_format(path)
    if not path.is_file():
        raise BatchInputError(f"batch input {path} does not exist")
    if kind in ("csv", "tsv", "text"):
        check_line_ends(path)
    size = max(path.stat().st_size, 1)
    readers = {"csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_json_lines,
               "parquet": _read_parquet, "text": _read_lines}
    first_id = 1
    try:
        for chunk, position in readers[kind](path, chunk_rows, kind):
            if "id" not in chunk:
                chunk.insert(0, "id", np.arange(first_id, first_id + len(chunk)).astype(str))
            first_id += len(chunk)
            yield chunk[["id", "text"]].reset_index(drop=True)
            if on_fraction:
                on_fraction(min(position / size, 1.0))
    except UnicodeDecodeError as error:
        raise BatchInputError(
            f"batch input {path} is not valid UTF-8 (byte {error.start} of a block: "
            f"{error.object[error.start:error.start + 8]!r}); re-encode it as UTF-8") from None


_LONE_CR = re.compile(rb"\r(?!\n)")
_CR, _LF = re.compile(rb"\r"), re.compile(rb"\n")


def _quoted_or(delimiter: str, ends: bytes) -> re.Pattern:
    """A quoted field (a quote opens one only at the start of a field, as in pandas' and
    Spark's parsers; ``""`` inside is a quote) or one of the line ends ``ends`` outside."""
    d = re.escape(delimiter.encode())
    return re.compile(rb'(?:(?<=[' + d + rb'\n])|\A(?:\xef\xbb\xbf)?)"(?:[^"]++|"")*+"|'
                      + ends)


def line_ends_outside_quotes(data, delimiter: str) -> Iterator[tuple[bytes, int]]:
    """``(line end, offset)`` of each ``\r\n``, lone ``\r`` and lone ``\n`` of CSV/TSV
    bytes (or an mmap) that is not inside a quoted field."""
    for match in _quoted_or(delimiter, rb"\r\n|\r|\n").finditer(data):
        if not match.group().startswith((b'"', b"\xef")):
            yield match.group(), match.start()


def _line_feed_only(data, delimiter: str) -> bytes:
    """``data`` without the ``\r`` of each ``\r\n`` outside quoted fields, so that a
    parser told that only ``\n`` ends a line reads every field exactly."""
    pieces, start = [], 0
    for match in _quoted_or(delimiter, rb"\r\n").finditer(data):
        if match.group() == b"\r\n":
            pieces.append(data[start:match.start()])
            start = match.start() + 1
    pieces.append(data[start:])
    return b"".join(pieces)


def _spaces(delimiter: str) -> bytes:
    """What a blank-looking line holds: spaces, and tabs in CSV (a tab is TSV's delimiter)."""
    return rb" " if delimiter == "\t" else rb"[ \t]"


def _blank_looking_line(delimiter: str) -> bytes:
    """A line of spaces (and tabs, in CSV) only: a message to Spark's parser, and skipped
    as blank by pandas' unless quoted."""
    return rb"(?:(?<=\n)|\A)" + _spaces(delimiter) + rb"+(?=\r?\n|\Z)"


def _has_blank_looking_line(path: Path, delimiter: str) -> bool:
    """Whether a line of the file is :func:`_blank_looking_line`. The scan looks for a
    ``\n`` first (a literal the regex engine skips to quickly; the lookbehind of
    :func:`_blank_looking_line` would test every byte), then at the first line."""
    with open(path, "rb") as handle:
        first = handle.readline()
    return (re.fullmatch(_spaces(delimiter) + rb"+\r?\n?", first) is not None
            or _search(path, re.compile(rb"\n" + _spaces(delimiter) + rb"+(?=\r?\n|\Z)")))


def _quote_blank_looking_lines(data: bytes, delimiter: str) -> bytes:
    """``data`` with every line of spaces outside quoted fields quoted, so that pandas
    reads it as the message it is (Spark does) instead of skipping it."""
    pieces, start = [], 0
    for match in _quoted_or(delimiter, _blank_looking_line(delimiter)).finditer(data):
        if not match.group().startswith((b'"', b"\xef")):  # a quoted field, maybe after a BOM
            pieces += [data[start:match.start()], b'"', match.group(), b'"']
            start = match.end()
    pieces.append(data[start:])
    return b"".join(pieces)


def check_line_ends(path: Path | str) -> None:
    """Refuse a text file whose lines end with a lone ``\r`` (classic Mac OS): it has no
    ``\n`` at all, so it would be read as one row (a lone ``\r`` is data)."""
    path = Path(path)
    if not _search(path, _LF) and _search(path, _CR):  # a \n is found at once, mostly
        raise BatchInputError(
            f"batch input {path}: its lines end with a lone carriage return (classic Mac OS) "
            "and only \\n or \\r\\n end a line, so it would be one row; convert it, e.g. "
            "tr '\\r' '\\n' < old > new")


def has_lone_carriage_return(path: Path) -> bool:
    """Whether the file holds a ``\r`` that is not followed by ``\n`` (a fast scan)."""
    return _search(path, _LONE_CR)


def _search(path: Path, pattern: re.Pattern) -> bool:
    if path.stat().st_size == 0:
        return False
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0,
                                               access=mmap.ACCESS_READ) as data:
        return pattern.search(data) is not None


def _read_delimited(path: Path, chunk_rows: int, kind: str):
    with open(path, "rb") as handle:
        if b"\x00" in handle.read(1 << 20):
            raise BatchInputError(f"batch input {path} contains NUL bytes: is it really a "
                                  f"{kind.upper()} text file?")
        handle.seek(0)
        sep = "," if kind == "csv" else "\t"
        source, options = handle, {}
        lone_cr = has_lone_carriage_return(path)
        if lone_cr or _has_blank_looking_line(path, sep):
            # pandas would end a row at the lone \r, or skip a message of spaces: read
            # the file whole (rare input; its size is held in memory once), with \n as
            # the only line end and such lines quoted
            data = handle.read()
            if lone_cr:
                data = _line_feed_only(data, sep)
                options = {"lineterminator": "\n"}
            source = io.BytesIO(_quote_blank_looking_lines(data, sep))
        try:
            reader = pd.read_csv(source, sep=sep, dtype=str,
                                 keep_default_na=False, na_filter=False, chunksize=chunk_rows,
                                 encoding="utf-8", engine="c", **options)
        except pd.errors.EmptyDataError:
            raise BatchInputError(f"batch input {path} is empty: expected a header line "
                                  "with a 'text' column") from None
        with reader:
            try:
                chunks = iter(reader)
                first = next(chunks, None)
                # a header-only file gives no chunk: check its header line instead
                header = list(first.columns) if first is not None else _header(path, kind)
                _check_columns(path, header)
                if first is not None:
                    yield first, source.tell()
                for chunk in chunks:
                    yield chunk, source.tell()
            except pd.errors.ParserError as error:
                raise BatchInputError(f"batch input {path} is not valid {kind.upper()}: "
                                      f"{error}") from None


def _header(path: Path, kind: str) -> list[str]:
    return list(pd.read_csv(path, sep="," if kind == "csv" else "\t", nrows=0,
                            encoding="utf-8").columns)


def _check_columns(path: Path, columns: list[str]) -> None:
    if "text" not in columns:
        hint = ("; its lines end with a lone carriage return (classic Mac OS), and only \\n "
                "or \\r\\n end a line: convert it, e.g. tr '\\r' '\\n'"
                if any("\r" in str(column) for column in columns) else "")
        raise BatchInputError(f"batch input {path} has no 'text' column (columns: {columns}); "
                              f"name the message column 'text'{hint}")


def parse_json_line(line: bytes | str) -> tuple[dict | None, str | None]:
    """One line of a JSON Lines input as its record, or what is wrong with it (the same
    rule for both engines): each line holds one JSON object with a string ``text``."""
    if not line.strip():
        return None, 'is empty; every line must be a JSON object like {"text": "..."}'
    try:
        record = json.loads(line)
    except ValueError as error:
        return None, f"is not JSON: {error}"
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        return None, f"has no string 'text' field: {line[:80]!r}"
    return record, None


def _read_json_lines(path: Path, chunk_rows: int, kind: str):
    with open(path, "rb") as handle:
        ids, texts = [], []
        for number, line in enumerate(handle, start=1):
            record, problem = parse_json_line(line)
            if problem:
                raise BatchInputError(f"batch input {path} line {number} {problem}")
            # no id: the row number, as read_messages numbers rows of the other formats
            ids.append(str(record["id"]) if "id" in record else str(number))
            texts.append(record["text"])
            if len(texts) == chunk_rows:
                yield pd.DataFrame({"id": ids, "text": texts}), handle.tell()
                ids, texts = [], []
        if texts:
            yield pd.DataFrame({"id": ids, "text": texts}), handle.tell()


def _read_parquet(path: Path, chunk_rows: int, kind: str):
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types
        raise BatchInputError(f"batch input {path} is not a Parquet file: {error}") from None
    names = source.schema_arrow.names
    _check_columns(path, names)
    columns = ["id", "text"] if "id" in names else ["text"]
    done = 0
    for batch in source.iter_batches(batch_size=chunk_rows, columns=columns):
        frame = batch.to_pandas()
        if frame["text"].isna().any():
            raise BatchInputError(f"batch input {path} has null texts (row "
                                  f"{done + int(frame['text'].isna().to_numpy().argmax()) + 1})")
        if "id" in frame:
            frame["id"] = frame["id"].astype(str)
        done += len(frame)
        yield frame, int(path.stat().st_size * done / max(source.metadata.num_rows, 1))


def _read_lines(path: Path, chunk_rows: int, kind: str):
    with open(path, "rb") as handle:
        texts: list[str] = []
        for line in handle:  # binary lines end at b"\n" only
            line = line[:-1] if line.endswith(b"\n") else line
            texts.append((line[:-1] if line.endswith(b"\r") else line).decode("utf-8"))
            if len(texts) == chunk_rows:
                yield pd.DataFrame({"text": texts}), handle.tell()
                texts = []
        if texts:
            yield pd.DataFrame({"text": texts}), handle.tell()


def _output_schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("text", pa.string()),
                      ("spam_probability", pa.float32()), ("label", pa.string()),
                      ("model_version", pa.int64())])


def scored_table(chunk: pd.DataFrame, probabilities: np.ndarray, labels: np.ndarray,
                 model_version: int):
    """The output rows of a scored ``id``/``text`` chunk, as an Arrow table for the sinks
    (the chunk's Arrow-backed strings are reused, not converted to Python objects)."""
    import pyarrow as pa

    schema = _output_schema()
    return pa.Table.from_arrays(
        [pa.array(chunk["id"].astype(str), pa.string()), pa.array(chunk["text"], pa.string()),
         pa.array(probabilities, pa.float32()), pa.array(labels, pa.string()),
         pa.array(np.full(len(chunk), model_version), pa.int64())], schema=schema)


def read_scores(path: Path | str, chunk_rows: int = 50_000) -> Iterator[pd.DataFrame]:
    """Yield chunks of a scores file that BatchScore wrote (CSV or Parquet), with
    :data:`OUTPUT_COLUMNS`, in file order."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():  # the Spark engine's Parquet dataset: its part files, in order
        batches = (batch for part in sorted(path.glob("part-*.parquet"))
                   for batch in pq.ParquetFile(part).iter_batches(batch_size=chunk_rows))
    elif path.suffix == ".parquet":
        batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
    else:
        types = {field.name: field.type for field in _output_schema()}
        batches = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=1 << 24),
                                  # texts may hold quoted line breaks, even at a block's end
                                  parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                                  convert_options=pa_csv.ConvertOptions(
                                      column_types=types, strings_can_be_null=False))
    for batch in batches:
        yield batch.to_pandas()


def read_day_scores(path: Path | str, chunk_rows: int = 50_000
                    ) -> tuple[int, Iterator[pd.DataFrame]]:
    """The model version of a scores file (BatchScore scores a file with one version)
    and its chunks; a file with no rows is an error, for there is nothing to look at."""
    import itertools

    chunks = read_scores(path, chunk_rows)
    first = next((chunk for chunk in chunks if len(chunk)), None)
    if first is None:
        raise BatchInputError(
            f"scores file {path} has no rows: the day's input was empty, so there is "
            "nothing to monitor or review")
    return int(first["model_version"].iloc[0]), itertools.chain([first], chunks)


class CsvSink:
    """Writes scored chunks as one CSV file (header first, even for 0 rows) with Arrow's
    writer: text fields quoted, probabilities in their shortest exact float32 form."""

    def __init__(self, destination):
        import pyarrow.csv as pa_csv

        self.schema = _output_schema()
        target = str(destination) if isinstance(destination, (str, Path)) else destination
        self.writer = pa_csv.CSVWriter(target, self.schema,
                                       write_options=pa_csv.WriteOptions(quoting_style="needed"))

    def write(self, table) -> None:
        self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()


class ParquetSink:
    """Writes scored chunks as row groups of one Parquet file."""

    def __init__(self, path: Path | str):
        import pyarrow.parquet as pq

        self.schema = _output_schema()
        self.writer = pq.ParquetWriter(str(path), self.schema)

    def write(self, table) -> None:
        self.writer.write_table(table, row_group_size=max(len(table), 1))  # a chunk a group

    def close(self) -> None:
        self.writer.close()


SINKS = {"csv": CsvSink, "parquet": ParquetSink}  # --BatchScore-output-format: a name here


def open_sink(output_format: str, destination):
    """The sink that writes ``output_format`` (a name in :data:`SINKS`) to ``destination``."""
    return SINKS[output_format](destination)
