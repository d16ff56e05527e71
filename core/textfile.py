"""Is this file UTF-8 text? One answer for every reader of user files (datasets, job configs), worded for the person.

Python's own answer is a `UnicodeDecodeError` traceback, or, with errors="replace", a silent mess: a UTF-16 file read
as UTF-8 looks empty or like one broken JSON line, a Latin-1 CSV imports with '�' in every accented word. Here the
first bytes are looked at once (byte-order marks, NUL bytes, archive signatures) and a bad byte further on is named
with its line and column, so the message says what the file is and how to fix it. Nothing here imports anything.
"""

from __future__ import annotations

import os
from pathlib import Path

HEAD_BYTES = 1 << 16  # what the sniffer reads of a file's start
UTF8_BOM = b"\xef\xbb\xbf"

_SIGNATURES = (  # (magic bytes, what the file is)
    (b"PAR1", "a Parquet file: give it the .parquet extension"),
    (b"\x1f\x8b", "a gzip archive: unpack it first"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?): unpack it, or save the sheet as CSV (UTF-8)"),
    (b"BZh", "a bzip2 archive: unpack it first"),
    (b"\xfd7zXZ\x00", "an xz archive: unpack it first"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive: unpack it first"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls / .doc): save it as CSV (UTF-8)"),
)
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"),
)
FIX = "save it as UTF-8 (an editor's 'Save with encoding', or Excel's 'CSV UTF-8')"


def sniff(head: bytes, complete: bool = False) -> str | None:
    """Why bytes that start a file are not UTF-8 text (a phrase like "looks like UTF-16"), or None when they are.

    `complete`: `head` is the whole file, so a multi-byte character cut at its end is an error too.
    """
    for bom, name in _BOMS:
        if head.startswith(bom):
            return f"looks like {name}: it starts with a {name} byte-order mark"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return f"looks like {what}"
    if b"\x00" in head:
        return _nul_guess(head)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if complete or e.end < len(head) or e.reason != "unexpected end of data":
            return decode_problem(head, e)
    return None


def _nul_guess(head: bytes) -> str:
    """NUL bytes: UTF-16 without a byte-order mark (every other byte 0 in ASCII-heavy text) or binary data."""
    sample = head[:4096]
    even, odd = sample[0::2], sample[1::2]
    if odd and (odd.count(0) > 0.4 * len(odd) or even.count(0) > 0.4 * len(even)):
        return "looks like UTF-16: every other byte is 0"
    return "looks like binary data, not text"


def decode_problem(data: bytes, e: UnicodeDecodeError, first_line: int = 1) -> str:
    """The bad byte of a failed UTF-8 decode, with its line and column and a guess of the encoding."""
    start = max(0, e.start)
    line = first_line + data.count(b"\n", 0, start)
    col = start - (data.rfind(b"\n", 0, start) + 1) + 1
    return f"byte 0x{data[start]:02X} at line {line}, column {col} is not UTF-8; {guess_encoding(data)}"


def guess_encoding(data: bytes) -> str:
    """A likely legacy encoding for bytes that are not UTF-8: GBK/GB18030 (Chinese) or Latin-1/Windows-1252."""
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        text = ""
    if text and sum("\u4e00" <= ch <= "\u9fff" for ch in text) >= 2:
        return "it looks like GBK / GB18030"
    return "it looks like Latin-1 / Windows-1252"


def read_head(path: str | os.PathLike, n: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def problem(path: str | os.PathLike) -> str | None:
    """Why the file at `path` is not UTF-8 text, judged from its start (None: it looks like UTF-8 text)."""
    p = Path(path)
    head = read_head(p)
    return sniff(head, complete=len(head) < HEAD_BYTES)


def not_text_message(shown: str, why: str) -> str:
    """The one sentence every reader uses: the file, 'not UTF-8 text', what it looks like, and the fix."""
    return f"{shown}: not UTF-8 text ({why}); {FIX}"


def decode(data: bytes) -> tuple[str | None, str | None]:
    """(text, None) for UTF-8 bytes (a leading byte-order mark dropped), or (None, why not)."""
    why = sniff(data[:HEAD_BYTES], complete=len(data) <= HEAD_BYTES)
    if why:
        return None, why
    body = data[3:] if data.startswith(UTF8_BOM) else data
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, decode_problem(body, e)
