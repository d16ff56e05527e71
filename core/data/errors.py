"""Row-level problems in a data file, reported as file + line + reason so a person can open the file and fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core.errors import UserError


@dataclass
class RowError:
    """One bad record. `line` is the 1-based line in a text file (JSON/JSONL/CSV) or the row number in Parquet
    (0: unknown, e.g. a record of a {"data": [...]} wrapper, which `record` then names)."""

    file: str
    line: int
    reason: str
    raw: str = ""  # a short excerpt of the offending record, for the rejects file
    record: int = 0  # 1-based position in a JSON array (0: not from one): a one-line array still says which record

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.record:
            where += f" (record {self.record})"
        return f"{where}: {self.reason}"

    def to_dict(self) -> dict:
        return asdict(self)


class DataError(UserError, ValueError):
    """A data file that cannot be used as asked: a list of row errors, or one problem with the whole file."""

    def __init__(self, message: str, errors: list[RowError] | None = None, *, code: str | None = None,
                 params: dict | None = None):
        self.errors = errors or []
        super().__init__(message, code=code, params=params)

    def report(self, limit: int = 50) -> str:
        lines = [str(self)]
        lines += [f"  - {e}" for e in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"  ... and {len(self.errors) - limit} more")
        return "\n".join(lines)


class RowInvalid(UserError, ValueError):
    """Raised by a format's normaliser for one record; the caller turns it into a RowError with file and line."""


def excerpt(obj: object, n: int = 200) -> str:
    text = obj if isinstance(obj, str) else repr(obj)
    return text if len(text) <= n else text[: n - 3] + "..."
