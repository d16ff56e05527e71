"""`UserError`: the one base of every error a person can fix (a bad file, a bad value, a refused path, a job in the
wrong state). The studio shows such an error's message as it is; anything else is a bug, shown as "internal error,
see log" with the traceback logged. Nothing here imports anything, so every room can derive from it.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the person can fix; `str(e)` says what to change (naming the field, file and line where known).

    `code` (with `params`) names the problem for the studio, which words it in the page's language from
    `studio/i18n/<lang>/errors.yaml` (`<code>: "text with {param}"`); the English message stays what the CLI prints
    and the studio's fallback. Raise as `UserError("english message", code="x", params={"path": p})`; a subclass with
    its own `__init__` sets `self.code` / `self.params`.
    """

    code: str | None = None
    params: dict = {}  # noqa: RUF012 - read-only class default; instances that set a code set their own

    def __init__(self, *args: object, code: str | None = None, params: dict | None = None):
        super().__init__(*args)
        if code is not None:
            self.code = code
        if params is not None:
            self.params = dict(params)

    def report(self) -> str:
        """The full text to show (multi-line where the error has several problems)."""
        return str(self)


class BackendError(UserError, RuntimeError):
    """A backend cannot be built or used as configured (unknown model, no chat template, server down...): a person
    fixes it by choosing another model or starting the server, so it is a UserError the studio shows as it is.

    The message says what to change; UI and CLI show it as is. It lives here rather than in `core.llm` because the
    model-path resolver below llm (`core.modelpath`) raises it too; `core.llm.base` re-exports it.
    """
