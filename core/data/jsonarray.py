"""A JSON array read element by element from the file, so memory holds one record (plus a 64 KB read buffer), never
the whole file: detection peeks at 50 records of a 1 GB array and stops, an import streams.

Why not `ijson`: it is a new dependency, and it gives no line numbers. The reader here is the standard library's C
scanner (`json.JSONDecoder.raw_decode`) run over a sliding text buffer: a record cut by the buffer's end is decoded
again once more text is read, so the speed is the C decoder's, and every record knows the line it starts on and every
error says line, column and record exactly as the whole-file reader did (core.data.io keeps those messages).

Rules of the buffer: a number that reaches the buffer's end (it may go on), a decode that fails within a few
characters of it, or inside a string that is not yet closed, reads more (doubling, so a 100 MB record costs O(size));
any other error is the file's. Bytes are decoded as UTF-8 as they are read: a bad byte is named with its line and
column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from core import textfile
from core.data.errors import DataError

CHUNK = 1 << 16
_WS = " \t\r\n"
_NUMBER = re.compile(r"[0-9+\-.eE]*")  # what may still follow the digits a number was decoded from
_NEAR_END = 16  # an error this close to the buffer's end may be a record cut in two: read more first


def starts_array(path: str | Path) -> bool:
    """Whether the file's first character (after a byte-order mark and whitespace) is '['."""
    with open(path, "rb") as f:
        head = f.read(CHUNK)
        while head:
            body = head.removeprefix(textfile.UTF8_BOM).lstrip(b" \t\r\n")
            if body:
                return body[:1] == b"["
            head = f.read(CHUNK)  # a file of whitespace only: keep looking (rare)
    return False


class _Text:
    """The file as UTF-8 text, read in chunks; a bad byte raises DataError naming its line and column."""

    def __init__(self, path: Path):
        self.path = path
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close(), the reader's finally
        self._pending = b""  # a multi-byte character cut by the chunk's end
        self._lines = 0  # newlines in the bytes decoded so far
        self._col = 0  # bytes since the last newline
        self._first = True
        self.eof = False

    def read(self, n: int) -> str:
        data = self._f.read(n)
        if not data:
            self.eof = True
            if self._pending:
                self._fail(self._pending, UnicodeDecodeError("utf-8", self._pending, 0, len(self._pending),
                                                             "unexpected end of data"))
            return ""
        if self._first:
            data = data.removeprefix(textfile.UTF8_BOM)
            self._first = False
        data = self._pending + data
        try:
            text = data.decode("utf-8")
            self._pending = b""
        except UnicodeDecodeError as e:
            if e.reason != "unexpected end of data" or e.end != len(data):
                self._fail(data, e)
            text = data[:e.start].decode("utf-8")
            self._pending = data[e.start:]
            data = data[:e.start]
        nl = data.rfind(b"\n")
        self._lines += data.count(b"\n")
        self._col = len(data) - nl - 1 if nl >= 0 else self._col + len(data)
        return text

    def _fail(self, data: bytes, e: UnicodeDecodeError) -> None:
        start = max(0, e.start)
        line = self._lines + 1 + data.count(b"\n", 0, start)
        nl = data.rfind(b"\n", 0, start)
        col = start - nl if nl >= 0 else self._col + start + 1
        why = (f"byte 0x{data[start]:02X} at line {line}, column {col} is not UTF-8; "
               f"{textfile.guess_encoding(data)}")
        raise DataError(textfile.not_text_message(str(self.path), why))

    def close(self) -> None:
        self._f.close()


def iter_array(path: str | Path) -> Iterator[tuple[int, int, object]]:
    """(line, 1-based index, value) of each element of the JSON array in `path`, streamed. DataError, worded as the
    whole-file reader worded it, for a broken element, a missing ',' or an array that is never closed."""
    p = Path(path)
    src = _Text(p)
    try:
        yield from _elements(p, src)
    finally:
        src.close()


def _elements(p: Path, src: _Text) -> Iterator[tuple[int, int, object]]:
    dec = json.JSONDecoder()
    buf = ""
    mark, line, col = 0, 1, 0  # buf[mark] is at this line (1-based) and character column (0-based) of the file

    def more(n: int = CHUNK) -> bool:
        nonlocal buf
        chunk = src.read(n)
        buf += chunk
        return bool(chunk)

    def skip_ws(i: int) -> int:
        while True:
            while i < len(buf) and buf[i] in _WS:
                i += 1
            if i < len(buf) or not more():
                return i

    def where(i: int) -> tuple[int, int]:
        """(line, 1-based column) of buf[i] (i >= mark; counted from the mark, which moves there)."""
        nonlocal mark, line, col
        nl = buf.count("\n", mark, i)
        if nl:
            line, col = line + nl, i - buf.rfind("\n", mark, i) - 1
        else:
            col += i - mark
        mark = i
        return line, col + 1

    def drop(i: int) -> int:
        """Forget buf[:i] (read and done with)."""
        nonlocal buf, mark
        where(i)
        buf, mark = buf[i:], 0
        return 0

    pos = skip_ws(0)
    if pos >= len(buf) or buf[pos] != "[":
        return  # starts_array said otherwise; nothing here is an array
    pos = skip_ws(pos + 1)
    if pos < len(buf) and buf[pos] == "]":
        return
    k = 0
    while pos < len(buf):
        if pos > CHUNK:
            pos = drop(pos)
        k += 1
        at_line = where(pos)[0]
        while True:
            try:
                value, end = dec.raw_decode(buf, pos)
            except json.JSONDecodeError as e:
                if not src.eof and (e.pos >= len(buf) - _NEAR_END or e.msg.startswith("Unterminated string")):
                    more(max(CHUNK, len(buf)))
                    continue
                ln, cn = where(e.pos)
                raise DataError(f"{p}: not valid JSON at line {ln}, column {cn} (record {k} of the array): "
                                f"{e.msg}", code="json_array_invalid",
                                params={"file": str(p), "line": ln, "column": cn, "record": k}) from None
            except RecursionError:
                raise DataError(f"{p}: record {k} of the array (line {at_line}) is nested too deeply",
                                code="json_array_deep", params={"file": str(p), "record": k, "line": at_line}) from None
            if (not src.eof and isinstance(value, (int, float)) and _NUMBER.match(buf, end).end() == len(buf)
                    and more(max(CHUNK, len(buf)))):
                continue  # a number may go on past the buffer ("1e" + "-07"): decode it again with what follows
            break
        yield at_line, k, value
        pos = skip_ws(end)
        if pos < len(buf) and buf[pos] == ",":
            pos = skip_ws(pos + 1)
        elif pos < len(buf) and buf[pos] == "]":
            return
        else:  # something else, or the end of the file right after a record (as the whole-file reader said it)
            raise DataError(f"{p}: not valid JSON at line {where(pos)[0]}: expected ',' or ']' after record {k} of "
                            "the array")
    raise DataError(f"{p}: not valid JSON: the array is not closed (file truncated?)")
