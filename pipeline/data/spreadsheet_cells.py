"""Cells of CSV files that people open in a spreadsheet (the review queue).

Excel and LibreOffice evaluate a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return as a formula, so a message like ``=HYPERLINK(...)`` in a review file
would run when an operator opens it (OWASP, "CSV Injection"). The spreadsheet convention
for "this cell is text" is a leading apostrophe, which the spreadsheet does not show.

The rule: :func:`neutralise_cell` adds one ``'`` to a cell that starts with one of
``= + - @ \\t \\r`` or with ``'`` itself (so that a text that really starts with an
apostrophe survives); :func:`restore_cell` drops a leading ``'`` that is followed by one of
those characters. ``restore_cell(neutralise_cell(t)) == t`` for every string ``t``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPED_STARTS = FORMULA_STARTS + ("'",)


def neutralise_cell(text: str) -> str:
    """``text`` as a cell a spreadsheet shows as text, never evaluates."""
    return "'" + text if text.startswith(ESCAPED_STARTS) else text


def restore_cell(cell: str) -> str:
    """The text :func:`neutralise_cell` made ``cell`` from."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(ESCAPED_STARTS) else cell


def write_spreadsheet_csv(frame: pd.DataFrame, path: Path | str,
                          text_columns: tuple[str, ...], append: bool = False) -> None:
    """Write ``frame`` as CSV with a header for people to open, its ``text_columns``
    neutralised. UTF-8 with a byte-order mark, which Excel needs to read it as UTF-8 (every
    reader here accepts it). Lines end with ``\r\n``: pandas then quotes every field that
    holds a ``\r`` or ``\n`` (with ``\n`` line ends it leaves a lone ``\r`` bare).
    ``append`` adds the rows to a file written so, without a header."""
    cells = {column: frame[column].astype(str).map(neutralise_cell)
             for column in text_columns if column in frame}
    frame.assign(**cells).to_csv(path, index=False, header=not append,
                                 mode="a" if append else "w",
                                 encoding="utf-8" if append else "utf-8-sig",
                                 lineterminator="\r\n")
