"""The UI context every tab builds against: workspace, language, and a registry of translatable components.

Tabs create components through `ui.reg(key, component, attr)` so that switching language is one mapping over the
registry (LlamaBoard's idea) and so tests can find components by stable ids (`elem_id` = key with dots as dashes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.workspace import Workspace
from studio.i18n import has, t

TEXT_VALUE_COMPONENTS = {"Button", "DownloadButton", "UploadButton", "Markdown", "HTML", "ClearButton"}


@dataclass
class Registered:
    component: Any
    key: str
    attrs: tuple[str, ...]  # which attributes carry text: label, value, info, placeholder
    choices: tuple[tuple[str, Any], ...] = ()  # (i18n key, value) of choices whose labels follow the language
    fallback: dict[str, str] = field(default_factory=dict)  # text for an attr whose i18n key is missing


@dataclass
class UIContext:
    workspace: Workspace
    lang: str = "en"
    options: dict[str, Any] = field(default_factory=dict)  # launch options tabs may need (read-only)
    registry: list[Registered] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)  # shared core objects (job manager, ...), by name
    shared: dict[str, Any] = field(default_factory=dict)  # components a tab lets others fill (e.g. chat pickers)
    deferred: list[Callable[[], None]] = field(default_factory=list)  # wiring that needs every tab built first

    def after_build(self, fn: Callable[[], None]) -> None:
        """Run `fn` inside the Blocks once all tabs exist (to wire events into components of later tabs)."""
        self.deferred.append(fn)

    def t(self, key: str, **fmt: object) -> str:
        return t(key, self.lang, **fmt)

    def reg(self, key: str, component: Any, *attrs: str, choices: tuple[tuple[str, Any], ...] = (),
            fallback: dict[str, str] | None = None) -> Any:
        """Register `component` whose `attrs` come from i18n key `key` (and `key_info`, ...).

        Default attribute: the text a person reads — `value` for buttons and markdown, `label` for inputs.
        `choices` are (i18n key, value) pairs: their labels switch language too.
        """
        if not attrs:
            attrs = ("value",) if type(component).__name__ in TEXT_VALUE_COMPONENTS else ("label",)
        self.registry.append(Registered(component, key, attrs, tuple(choices), dict(fallback or {})))
        return component

    def job_action(self, action: str, job_id: str | None, done_key: str, none_key: str) -> str:
        """A tab's Stop/Resume/Cancel button: the message to show. Refusals (no such job, wrong state) are shown."""
        if not job_id:
            return self.t(none_key)
        try:
            getattr(self.jobs(), action)(job_id)
        except (LookupError, ValueError) as e:  # JobNotFound, JobStateError
            return f"⚠️ {e}"
        return self.t(done_key, job=job_id)

    def error_text(self, e: Exception, where: str | None = None) -> str:
        """A UserError as the person reads it: in the page's language where there is a text for its code, with a
        form field named by its label; otherwise core's message (English, as the CLI prints it)."""
        report = self.shown_paths(e.report() if hasattr(e, "report") else str(e))
        field, where = getattr(e, "field", None), getattr(e, "where", None) or where
        code = getattr(e, "code", None)
        label = self.t(f"{where}.{field}") if field and where and has(f"{where}.{field}") else field
        if code and has(f"errors.{code}"):
            params = {k: self.shown_paths(v) if isinstance(v, str) else v for k, v in getattr(e, "params", {}).items()}
            text = self.t(f"errors.{code}", **params)
            return f"{label}: {text}" if label else text
        if label and label != field and report.startswith(f"{field}: "):
            return f"{label}: {report[len(field) + 2:]}"
        return report

    def shown_paths(self, text: str) -> str:
        """A message with the server's workspace path cut off its paths (`datasets/x.json`, not `/srv/.../x.json`):
        what a visitor reads never shows where the server keeps the workspace."""
        root = str(self.workspace.root)
        return text.replace(root + os.sep, "").replace(root, "<workspace>")

    def job_words(self) -> dict[str, str]:
        """The words `core.jobs.summary` renders a job's status with, in the page's language (states, ETA, step)."""
        from core.jobs.rundir import ALL_STATES
        from core.jobs.summary import WORD_KEYS

        words = {s: self.t(f"jobs.status_{s}") for s in ALL_STATES}
        words.update({k: self.t(f"jobs.word_{k}") for k in WORD_KEYS})
        return {**words, "eta": self.t("jobs.col_eta"), "step": self.t("jobs.word_step"),
                "queued_at": self.t("jobs.queued_at"), "attempt": self.t("jobs.attempt")}

    def jobs(self) -> Any:
        """The studio's one JobManager, shared by every tab (created on first use; re-attaches to live jobs)."""
        manager = self.services.get("jobs")
        if manager is None:
            from core.jobs.manager import JobManager

            manager = self.services.setdefault("jobs", JobManager(self.workspace))
        return manager

    def text_for(self, item: Registered, lang: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr in item.attrs:
            k = item.key if attr in ("label", "value") else f"{item.key}_{attr}"
            out[attr] = t(k, lang) if has(k) or attr not in item.fallback else item.fallback[attr]
        if item.choices:
            out["choices"] = [(t(k, lang) if has(k) else str(v), v) for k, v in item.choices]
        return out


def elem_id(key: str) -> str:
    return key.replace(".", "-").replace("_", "-")
