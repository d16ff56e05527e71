"""`Said`: an English line (what the CLI, logs and result files hold) that also names its text for the studio.

A row's import problem, a job's event, an evaluation's note: core writes them in English, and the studio words them
in the page's language from `code` (a full i18n key, such as `errors.row_json` or `models.derive_kept`) with
`params`, falling back to the English text where the key has no text. It is a `str`, so everything that prints, joins
or JSON-dumps the line keeps working unchanged; `to_dict` / `of` carry the code through a JSON file.
"""

from __future__ import annotations

from typing import Any


class Said(str):
    code: str | None
    params: dict

    def __new__(cls, text: str = "", code: str | None = None, params: dict | None = None) -> Said:
        self = super().__new__(cls, text)
        self.code, self.params = code, dict(params or {})
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"text": str(self), "code": self.code, "params": self.params}

    @classmethod
    def of(cls, value: Any) -> Said | str:
        """A Said back from `to_dict` (a plain string or None stays what it is)."""
        if isinstance(value, dict):
            return cls(str(value.get("text", "")), value.get("code"), value.get("params"))
        return value


def said_dict(text: Any) -> dict[str, Any] | None:
    """What a result file keeps beside an English line so the studio can word it (None: plain text)."""
    return text.to_dict() if isinstance(text, Said) and text.code else None


def said_fields(text: Any) -> dict[str, Any]:
    """The fields a job's event (`ctx.event(text, **said_fields(text))`) keeps so the studio can word it."""
    return {"event_code": text.code, "event_params": text.params} if isinstance(text, Said) and text.code else {}


def of_error(e: Exception) -> Said:
    """A UserError's message with its code (an `errors.<code>` key) and params, as a Said."""
    code = getattr(e, "code", None)
    return Said(str(e), f"errors.{code}" if code else None, getattr(e, "params", None))
