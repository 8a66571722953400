"""Reading CSV files people bring (prospects, suppression lists): the delimiter
sniffed among comma, semicolon and tab (Excel's default in much of Europe is the
semicolon), lines decoded one by one so a bad byte is reported at its line, and
headers compared as people write them."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

DELIMITERS = ",;\t"
SAMPLE_BYTES = 64 * 1024
"""What the delimiter is sniffed from: the file's first lines."""
SAMPLE_LINES = 50


def reader(source: BinaryIO) -> Any:
    """A csv.reader of ``source`` (opened in binary, at its start) with its sniffed delimiter."""
    delimiter = sniff(source.read(SAMPLE_BYTES))
    source.seek(0)
    return csv.reader(decoded(source), delimiter=delimiter)


def sniff(sample: bytes) -> str:
    """The delimiter of a file starting with ``sample``: csv.Sniffer's guess among
    comma, semicolon and tab when the first lines split evenly by it, else the one
    that splits them into the most columns evenly, else a comma (one column)."""
    text = sample.decode("utf-8-sig", errors="replace")
    if len(sample) == SAMPLE_BYTES and "\n" in text:
        text = text[: text.rindex("\n")]  # no half line
    lines = text.splitlines()[:SAMPLE_LINES]
    text = "\n".join(lines)
    scores = {d: _evenness(text, d) for d in DELIMITERS}
    try:
        guess = csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        guess = ""
    if guess in scores and scores[guess][0] == 1.0 and scores[guess][1] > 1:
        return guess
    best = max(DELIMITERS, key=lambda d: scores[d])
    return best if scores[best][1] > 1 else ","


def _evenness(text: str, delimiter: str) -> tuple[float, int]:
    """The share of the sample's rows with as many fields as its first, and how many that is."""
    try:
        rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r]
    except csv.Error:
        return 0.0, 0
    if not rows:
        return 0.0, 0
    width = len(rows[0])
    return sum(len(r) == width for r in rows) / len(rows), width


def decoded(source: BinaryIO) -> Iterator[str]:
    """The file's lines as text, decoded one by one, so a bad byte is caught at its line."""
    for number, raw in enumerate(source, 1):
        yield raw.decode("utf-8-sig" if number == 1 else "utf-8")


def unreadable(error: UnicodeDecodeError | csv.Error) -> str:
    """Why the rest of a file cannot be read, for its reader."""
    return "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else str(error)


def header_key(header: str) -> str:
    """``header`` as headers are compared: lower-cased, letters and digits only."""
    return re.sub(r"[\W_]+", "", header.casefold())
