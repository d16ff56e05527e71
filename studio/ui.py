"""The UI context every tab builds against: workspace, language, and a registry of translatable components.

Tabs create components through `ui.reg(key, component, attr)` so that serving a page in a language is one mapping
over the registry (LlamaBoard's idea) and so tests can find components by stable ids (`elem_id` = key with dots as
dashes).

The language is the page's: each open page (Gradio session) has the one it was loaded in (its switch's choice; the
launch language by default). Handlers need no input for it: `ui.t`, `ui.error_text` and `ui.job_words` read the
page of the event being handled (`studio.edge.event_session`). A page is served in its language
(`studio/language.py`), but what a handler renders (a status panel, a table's rows) is built in the launch language
until the handler runs for the page, so a tab names such a panel's refresh with `ui.on_language(fn, inputs,
outputs)`: it runs as a page loads in another language.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.workspace import Workspace
from studio.edge import event_session
from studio.i18n import LANGS, has, spoken, t

Label = str | Mapping[str, str]  # a choice's label: an i18n key, or its text in each language (a preset's title)
TEXT_VALUE_COMPONENTS = {"Button", "DownloadButton", "UploadButton", "Markdown", "HTML", "ClearButton"}
SESSIONS_KEPT = 10_000  # pages whose language is remembered (the oldest are forgotten: they fall back to the launch's)


@dataclass
class Registered:
    component: Any
    key: str
    attrs: tuple[str, ...]  # which attributes carry text: label, value, info, placeholder
    choices: tuple[tuple[Label, Any], ...] = ()  # (i18n key or {lang: text}, value) of choices
    fallback: dict[str, str] = field(default_factory=dict)  # text for an attr whose i18n key is missing
    headers: tuple[str, ...] = ()  # i18n keys of a table's column headers
    template: str = "{}"  # how the text of `label` / `value` is shown ("### {}": a heading)


@dataclass
class Refresh:
    """A handler that re-renders texts a tab's handlers wrote, run as a page loads in another language."""

    fn: Callable[..., Any]
    inputs: list[Any] | set[Any]  # a set: the handler gets one {component: value} dict (as with Gradio)
    outputs: list[Any]


class UIContext:
    def __init__(self, workspace: Workspace, lang: str = "en", options: dict[str, Any] | None = None):
        self.workspace = workspace
        self.launch_lang = lang if lang in LANGS else "en"  # a page's language until its switch says otherwise
        self.options: dict[str, Any] = dict(options or {})  # launch options tabs may need (read-only)
        self.registry: list[Registered] = []
        self.refreshes: list[Refresh] = []
        self.services: dict[str, Any] = {}  # shared core objects (job manager, ...), by name
        self.shared: dict[str, Any] = {}  # components a tab lets others fill (e.g. chat pickers)
        self.deferred: list[Callable[[], None]] = []  # wiring that needs every tab built first
        self.session_langs: dict[str, str] = {}  # Gradio session -> the language its page shows

    @property
    def lang(self) -> str:
        """The language of the page whose event runs now (outside an event: the launch language)."""
        session = event_session()
        return spoken() or (self.session_langs.get(session, self.launch_lang) if session else self.launch_lang)

    def set_page_lang(self, session: str | None, lang: str) -> None:
        """Remember the language a page (Gradio session) is in; its handlers speak it from now on."""
        if not session or lang not in LANGS:
            return
        self.session_langs.pop(session, None)
        self.session_langs[session] = lang
        while len(self.session_langs) > SESSIONS_KEPT:
            self.session_langs.pop(next(iter(self.session_langs)))

    def on_language(self, fn: Callable[..., Any], inputs: list[Any] | set[Any] | None = None,
                    outputs: list[Any] | None = None) -> None:
        """Run `fn(*inputs) -> outputs` as a page loads in another language than the launch's, in the page's language
        (re-render what a handler wrote: a status panel, a table's rows, a help text that depends on a choice)."""
        self.refreshes.append(Refresh(fn, inputs if isinstance(inputs, set) else list(inputs or []),
                                      list(outputs or [])))

    def after_build(self, fn: Callable[[], None]) -> None:
        """Run `fn` inside the Blocks once all tabs exist (to wire events into components of later tabs)."""
        self.deferred.append(fn)

    def t(self, key: str, /, **fmt: object) -> str:
        return t(key, self.lang, **fmt)

    def reg(self, key: str, component: Any, *attrs: str, choices: tuple[tuple[Label, Any], ...] = (),
            fallback: dict[str, str] | None = None, headers: tuple[str, ...] = (), template: str = "{}") -> Any:
        """Register `component` whose `attrs` come from i18n key `key` (and `key_info`, ...).

        Default attribute: the text a person reads — `value` for buttons and markdown, `label` for inputs.
        `choices` are (i18n key or {lang: text}, value) pairs: their labels follow the language too. `headers`: the
        i18n keys of a table's columns (rows a handler sends later come under them). `template` wraps the label /
        value text ("### {}" keeps a heading a heading).
        """
        if not attrs:
            attrs = ("value",) if type(component).__name__ in TEXT_VALUE_COMPONENTS else ("label",)
        self.registry.append(Registered(component, key, attrs, tuple(choices), dict(fallback or {}), tuple(headers),
                                        template))
        return component

    def choices(self, labelled: tuple[tuple[Label, Any], ...] | list[tuple[Label, Any]],
                lang: str | None = None) -> list[tuple[str, Any]]:
        """(label, value) choices from (i18n key or {lang: text}, value) pairs, in the page's language (or `lang`);
        the value itself where a key has no text."""
        lang = lang or self.lang
        return [(_label(k, v, lang), v) for k, v in labelled]

    def job_action(self, action: str, job_id: str | None, done_key: str, none_key: str) -> str:
        """A tab's Stop/Resume/Cancel button: the message to show. Refusals (no such job, wrong state) are shown."""
        if not job_id:
            return self.t(none_key)
        try:
            getattr(self.jobs(), action)(job_id)
        except (LookupError, ValueError) as e:  # JobNotFound, JobStateError
            return f"⚠️ {self.error_text(e)}"
        return self.t(done_key, job=job_id)

    def error_text(self, e: Exception, where: str | None = None) -> str:
        """A UserError as the person reads it: in the page's language where there is a text for its code
        (`errors.<code>` with the error's params; a `status` param reads as the job state's word), with a form field
        named by its label, each of its `parts` so worded; otherwise core's message (English, as the CLI prints it)."""
        report = self.shown_paths(e.report() if hasattr(e, "report") else str(e))
        field, where = getattr(e, "field", None), getattr(e, "where", None) or where
        parts = getattr(e, "parts", None)
        if parts:
            return "; ".join(self.error_text(p, where) for p in parts)
        code = getattr(e, "code", None)
        label = self.t(f"{where}.{field}") if field and where and has(f"{where}.{field}") else field
        if code and has(f"errors.{code}"):
            params = {k: self.shown_paths(v) if isinstance(v, str) else v for k, v in getattr(e, "params", {}).items()}
            if has(f"jobs.status_{params.get('status')}"):
                params["status"] = self.t(f"jobs.status_{params['status']}")
            text = self.t(f"errors.{code}", **params)
            head, full = str(e), e.report() if hasattr(e, "report") else str(e)
            if isinstance(getattr(e, "errors", None), list) and e.errors:  # a DataError's bad records, worded by code
                text += "".join(f"\n  - {self.row_text(r)}" for r in e.errors[:50])
                text += f"\n  ... {self.t('errors.rows_more', n=len(e.errors) - 50)}" if len(e.errors) > 50 else ""
            elif len(full) > len(head) and full.startswith(head):  # the lines a report lists under it
                text += self.shown_paths(full[len(head):])
            return f"{label}: {text}" if label else text
        if label and label != field and report.startswith(f"{field}: "):
            return f"{label}: {report[len(field) + 2:]}"
        return report

    def said(self, text: Any) -> str:
        """A line core wrote in English (`core.said.Said`: a row's problem, a job's event, a note) in the page's
        language where its code names a text; the English otherwise."""
        code = getattr(text, "code", None)
        return self.t(code, **text.params) if code and has(code) else str(text)

    def row_text(self, e: Any) -> str:
        """A bad record (core.data.errors.RowError) as `file:line (record n): reason`, in the page's words."""
        where = f"{e.file}:{e.line}" if e.line else e.file
        if e.record:
            where += " " + self.t("errors.row_record", n=e.record)
        return self.shown_paths(f"{where}: {self.said(e.reason)}")

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
            if attr in ("label", "value"):
                out[attr] = item.template.format(out[attr])
        if item.choices:
            out["choices"] = self.choices(item.choices, lang)
        if item.headers:
            out["headers"] = [t(k, lang) for k in item.headers]
        return out


def _label(key: Label, value: Any, lang: str) -> str:
    if isinstance(key, Mapping):
        return key.get(lang) or key.get("en") or str(value)
    return t(key, lang) if has(key) else str(value)


def elem_id(key: str) -> str:
    return key.replace(".", "-").replace("_", "-")
