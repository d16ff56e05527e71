"""The Jobs tab: every job of the workspace (table with filters), the selected job's live progress, log tail,
metric curves and config, the Stop / Cancel / Resume / Clone / Delete actions, and which job holds which device.

A `gr.Timer` polls core.jobs (which also advances the queue) while any job is queued or running, and sleeps otherwise
(woken by a tab switch or an action here: studio.job_panel.live_timer); closing the browser changes nothing for the
jobs. Unchanged parts are skipped on each tick so a quiet tab costs one small query. Until a row is clicked (or a job
acted on), the detail follows the newest job that runs, moving on when the one it shows has ended. Handlers are thin
calls into core.jobs.JobManager, shared through `ui.services["jobs"]`; every job's words come from core.jobs.summary.
"""

from __future__ import annotations

import hashlib
import html
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.errors import UserError
from core.jobs import summary
from studio.job_panel import follow, live_timer, running
from studio.tabs.jobs_compare import build_compare
from studio.ui import UIContext

TICK_S = 1.5
REFRESH_S = TICK_S / 2  # one reconcile-and-schedule pass per this long for every open Jobs tab together
LOG_LINES = 200
TABLE_LIMIT = 200
STATUS_FILTERS = ["all", "active", "finished", "queued", "running", "stopping", "succeeded", "failed", "stopped",
                  "cancelled"]
DEVICE_COLUMNS = ("device", "name", "memory", "jobs")
STATE_COLORS = {"failed": "#d9534f", "cancelled": "#999", "stopped": "#f0ad4e", "succeeded": "#5cb85c"}


# view models (pure: the words come from core.jobs.summary) -------------------------------------------------------


def table_rows(infos: list[Any], words: Mapping[str, str] | None = None) -> list[list[str]]:
    return [summary.table_row(i, words) for i in infos]


def progress_html(info: Any | None, words: Mapping[str, str] | None = None) -> str:
    """A bar and its caption; `data-status` / `data-pct` carry the raw state and percentage for tests and CSS."""
    if info is None:
        return ""
    frac = summary.fraction(info)
    width = 0.0 if frac is None else 100 * frac
    color = STATE_COLORS.get(info.status, "#4a90d9")
    text = html.escape(summary.progress_text(info, words))
    return (
        f'<div class="eds-job-progress" data-status="{html.escape(info.status)}" data-pct="{width:.1f}">'
        f'<div style="background:#e5e7eb;border-radius:6px;height:14px;overflow:hidden">'
        f'<div style="width:{width:.1f}%;height:100%;background:{color};transition:width .4s"></div></div>'
        f'<div class="eds-job-progress-text" style="margin-top:4px;font-size:0.9em">{text}</div></div>'
    )


def detail_md(info: Any | None, t: Callable[..., str], words: Mapping[str, str] | None = None) -> str:
    """The selected job: id, kind and its progress words, then what only this view shows (queue, failure, folder).
    A failed job reads cause and fix first (core.jobs.failure), its own message next, the traceback folded below."""
    if info is None:
        return t("jobs.none_selected")
    attempt = f" · {t('jobs.attempt', n=info.attempt)}" if info.attempt > 1 else ""
    lines = [f"### {html.escape(info.name)}",
             f"`{info.id}` · {info.kind} · **{html.escape(summary.progress_text(info, words))}**{attempt}"]
    lines += failure_lines(info, t)
    if info.reason and info.status != "failed":
        lines.append(f"**{t('jobs.reason')}:** {html.escape(info.reason)}")
    if summary.queue_note(info, words):
        lines.append(summary.queue_note(info, words))
    lines.append(f"{t('jobs.run_folder')}: `{info.run_dir}`")
    return "\n\n".join(lines)


def failure_lines(info: Any, t: Callable[..., str]) -> list[str]:
    """A failed job's cause and fix in the reader's words (`jobs.cause_<name>`, `jobs.fix_<name>`; core's English
    where a cause has no text yet), the job's own message, then the traceback in a folded <details>."""
    from core.jobs.failure import cause_of
    from studio.i18n import has

    cause = cause_of(info)
    if cause is None:
        return []
    said = {k: t(f"jobs.{k}_{cause.name}") if has(f"jobs.{k}_{cause.name}") else getattr(cause, k)
            for k in ("cause", "fix")}
    lines = [f"**{t('jobs.failure_cause')}:** {html.escape(said['cause'])}",
             f"**{t('jobs.failure_fix')}:** {html.escape(said['fix'])}"]
    if info.reason:
        lines.append(f"**{t('jobs.reason')}:** {html.escape(info.reason)}")
    if info.detail:
        body = html.escape(info.detail[-3000:])
        lines.append(f'<details class="eds-job-traceback"><summary>{t("jobs.failure_details")}</summary>\n\n'
                     f"<pre>{body}</pre>\n\n</details>")
    return lines


def device_rows(panel: list[dict], names: dict[str, str], t) -> list[list[str]]:
    rows = []
    for d in panel:
        holders = ", ".join(names.get(j, j) for j in d["jobs"]) or "—"
        if d["key"] == "cpu":
            rows.append(["cpu", "CPU", t("jobs.cpu_slots", used=len(d["jobs"]), slots=d.get("slots", "?")), holders])
        else:
            mem = f"{d['memory_used_mb']} / {d['memory_total_mb']} MiB"
            rows.append([d["key"], d["name"], mem, holders])
    return rows


def _digest(obj: Any) -> str:
    return hashlib.sha1(repr(obj).encode("utf-8", errors="replace")).hexdigest()


# the tab ----------------------------------------------------------------------------------------------------------


@dataclass
class _View:
    """The tab's components, so the wiring functions below can share them."""

    status_f: Any
    kind_f: Any
    search: Any
    selftest_steps: Any
    selftest: Any
    table: Any
    detail: Any
    progress: Any
    buttons: dict[str, Any]
    message: Any
    log_box: Any
    plot: Any
    config: Any
    devices: Any
    selected: Any
    sig: Any
    armed_delete: Any

    @property
    def tick_inputs(self) -> list[Any]:
        return [self.selected, self.status_f, self.kind_f, self.search, self.sig]

    timer: Any = None

    @property
    def tick_outputs(self) -> list[Any]:
        return [self.table, self.devices, self.detail, self.progress, self.log_box, self.plot, self.sig, self.selected,
                self.timer]


def build(ui: UIContext) -> None:
    ui.jobs()  # at studio start: re-attach to jobs still running, mark vanished ones failed
    v = _layout(ui)
    build_compare(ui)  # "Compare runs", below the devices table (studio/tabs/jobs_compare.py)
    tick = _poller(ui)
    v.timer = live_timer(ui, TICK_S)
    v.timer.tick(tick, v.tick_inputs, v.tick_outputs, show_progress="hidden")
    for comp in (v.status_f, v.kind_f):
        comp.change(tick, v.tick_inputs, v.tick_outputs, show_progress="hidden")
    v.search.submit(tick, v.tick_inputs, v.tick_outputs, show_progress="hidden")

    def pick(evt: gr.SelectData, seen: dict):
        row = evt.row_value or []
        job_id = str(row[0]) if row else None
        seen = {**{k: val for k, val in (seen or {}).items() if k in ("table", "devices")}, "pinned": True}
        return job_id, seen, ui.jobs().config_text(job_id) if job_id else "", "", None

    v.table.select(pick, [v.sig], [v.selected, v.sig, v.config, v.message, v.armed_delete],
                   show_progress="hidden").then(tick, v.tick_inputs, v.tick_outputs, show_progress="hidden")
    act_outputs = [v.message, v.armed_delete, v.config, v.selected]

    def pin_and_tick(job_id: str | None, status: str, kind: str, text: str, seen: dict):
        """After an action the detail stays on the job acted on (a stopped job is resumed next, not replaced)."""
        return tick(job_id, status, kind, text, {**(seen or {}), "pinned": True})

    for action, button in v.buttons.items():
        button.click(_action(ui, action), [v.selected, v.armed_delete], act_outputs, show_progress="hidden").then(
            pin_and_tick, v.tick_inputs, v.tick_outputs, show_progress="hidden")

    def run_selftest(steps: float | None):
        from core.config.selftest import SelftestJob

        n = max(1, int(steps or 50))
        m = ui.jobs()
        job_id = m.submit(SelftestJob(steps=n, delay_s=0.2, name=f"selftest {n} steps"))
        return job_id, {}, m.config_text(job_id), ui.t("jobs.msg_selftest", id=job_id)

    v.selftest.click(run_selftest, [v.selftest_steps], [v.selected, v.sig, v.config, v.message],
                     show_progress="hidden").then(tick, v.tick_inputs, v.tick_outputs, show_progress="hidden")
    # after a language switch: everything again, in the new words ("job": "" re-renders an empty detail too)
    ui.on_language(lambda j, s, k, x, seen: tick(j, s, k, x, {**(seen or {}), "table": None, "devices": None,
                                                              "job": ""}), v.tick_inputs, v.tick_outputs)


def _layout(ui: UIContext) -> _View:
    t = ui.t
    with gr.Row(equal_height=True):
        status_f = ui.reg("jobs.filter_status", gr.Dropdown(
            choices=[(t(f"jobs.status_{s}"), s) for s in STATUS_FILTERS], value="all", label=t("jobs.filter_status"),
            elem_id="jobs-filter-status", scale=1), choices=tuple((f"jobs.status_{s}", s) for s in STATUS_FILTERS))
        kinds = (("jobs.status_all", ""), *((f"jobs.kind_{k}", k) for _, k in _kinds()))
        kind_f = ui.reg("jobs.filter_kind", gr.Dropdown(choices=ui.choices(kinds), value="",
                                                         label=t("jobs.filter_kind"), elem_id="jobs-filter-kind",
                                                         scale=1), choices=kinds)
        search = ui.reg("jobs.search", gr.Textbox(label=t("jobs.search"), placeholder=t("jobs.search_placeholder"),
                                                  elem_id="jobs-search", scale=2), "label", "placeholder")
        selftest_steps = ui.reg("jobs.selftest_steps", gr.Number(value=50, minimum=1, maximum=100000, precision=0,
                                                                 label=t("jobs.selftest_steps"),
                                                                 elem_id="jobs-selftest-steps", scale=1))
        selftest = ui.reg("jobs.selftest", gr.Button(t("jobs.selftest"), elem_id="jobs-selftest", scale=1), "value")
    table = ui.reg("jobs.table", gr.Dataframe(
        headers=[t(f"jobs.col_{c}") for c in summary.TABLE_COLUMNS], value=[], interactive=False, max_height=360,
        wrap=False, label=t("jobs.table"), elem_id="jobs-table"),
        headers=tuple(f"jobs.col_{c}" for c in summary.TABLE_COLUMNS))
    with gr.Row():
        with gr.Column(scale=3):
            detail = gr.Markdown(t("jobs.none_selected"), elem_id="jobs-detail")
            progress = gr.HTML("", elem_id="jobs-progress")
            with gr.Row():
                buttons = {a: ui.reg(f"jobs.{a}", gr.Button(t(f"jobs.{a}"), elem_id=f"jobs-{a}", size="sm",
                                                            variant="stop" if a == "cancel" else "secondary"),
                                     "value")
                           for a in ("stop", "cancel", "resume", "clone", "delete")}
            message = gr.Markdown("", elem_id="jobs-message")
            log_box = ui.reg("jobs.log", gr.Textbox(label=t("jobs.log"), lines=16, max_lines=16, autoscroll=True,
                                                    interactive=False, elem_id="jobs-log"))
        with gr.Column(scale=2):
            plot = ui.reg("jobs.metrics", gr.Plot(label=t("jobs.metrics"), elem_id="jobs-plot"))
            with ui.reg("jobs.config", gr.Accordion(t("jobs.config"), open=False, elem_id="jobs-config-box")):
                config = gr.Code(language="yaml", interactive=False, elem_id="jobs-config")
    devices = ui.reg("jobs.devices", gr.Dataframe(
        headers=[t(f"jobs.dev_{c}") for c in DEVICE_COLUMNS], value=[], interactive=False,
        label=t("jobs.devices"), elem_id="jobs-devices"), headers=tuple(f"jobs.dev_{c}" for c in DEVICE_COLUMNS))
    return _View(status_f, kind_f, search, selftest_steps, selftest, table, detail, progress, buttons, message,
                 log_box, plot, config, devices, gr.State(None), gr.State({}), gr.State(None))


def _poller(ui: UIContext) -> Callable[..., tuple]:
    """The timer's handler: table, devices, and the selected job's detail, progress, log and curves (what changed),
    and whether to keep polling (while any job is queued or running)."""
    t = ui.t
    refresh = _coalesced_refresh(REFRESH_S)

    def tick(job_id: str | None, status: str, kind: str, text: str, seen: dict):
        m = ui.jobs()
        refresh(m)
        words = ui.job_words()
        seen = dict(seen or {})
        infos = m.list(status=None if status == "all" else status, kind=kind or None, text=text or None,
                       limit=TABLE_LIMIT, refresh=False)
        watched = _watched(m, job_id)
        job_id = follow(job_id, bool(seen.get("pinned")), watched)
        info = next((i for i in watched if i.id == job_id), None)
        awake = gr.Timer(active=any(running(i) for i in watched))
        rows = table_rows(infos, words)
        dev_rows = device_rows(m.device_panel(), {i.id: i.name for i in watched}, t)
        out_table = _changed(seen, "table", rows, lambda: gr.update(value=rows))
        out_dev = _changed(seen, "devices", dev_rows, lambda: gr.update(value=dev_rows))
        if info is None:
            changed = seen.get("job") is not None
            seen["job"] = None
            blank = (t("jobs.none_selected"), "", "", None) if changed else (gr.skip(),) * 4
            return (out_table, out_dev, *blank, seen, job_id, awake)
        if seen.get("job") != job_id:
            for k in ("log", "metrics"):
                seen.pop(k, None)
        seen["job"] = job_id
        log_text = m.logs(job_id, LOG_LINES)
        out_log = _changed(seen, "log", log_text, lambda: log_text)
        records = m.metrics(job_id)
        out_plot = _changed(seen, "metrics", (job_id, len(records)), lambda: _figure(records, info))
        return (out_table, out_dev, detail_md(info, t, words), progress_html(info, words), out_log, out_plot, seen,
                job_id, awake)

    return tick


def _coalesced_refresh(every_s: float) -> Callable[[Any], None]:
    """The job manager's reconcile-and-schedule pass (what advances the queue) at most once per `every_s` for all
    pages polling together. The pass takes the job list's write lock, so twenty open Jobs tabs each running it on
    every tick would wait their turns; a tick that finds it done recently (or under way) reads what it left."""
    last = [-math.inf]
    lock = threading.Lock()

    def refresh(m: Any) -> None:
        with lock:
            now = time.monotonic()
            if now - last[0] < every_s:
                return
            last[0] = now
        try:
            m.refresh()
        except UserError:  # the list cannot be written (a full disk): it is read as it is, m.store_problem says why
            pass

    return refresh


def _watched(m: Any, job_id: str | None) -> list[Any]:
    """What a tick needs beyond the table's rows: the jobs queued or running (newest first: the detail follows the
    newest, the timer polls while there is one, they hold the devices) and the job the detail shows. A few rows
    however many jobs the workspace holds."""
    live = m.list(status="active", refresh=False)
    if not job_id or any(i.id == job_id for i in live):
        return live
    try:
        return [*live, m.get(job_id, refresh=False)]
    except UserError:  # deleted (here or elsewhere): the detail moves on
        return live


def _action(ui: UIContext, action: str) -> Callable[..., tuple]:
    """A Stop / Cancel / Resume / Clone / Delete button: (message, armed delete, config, selected job).
    Refusals (no such job, wrong state) are shown in the message; Delete asks for a second click."""
    t = ui.t

    def handler(job_id: str | None, armed: str | None):
        if not job_id:
            return t("jobs.pick_first"), None, gr.skip(), job_id
        m = ui.jobs()
        try:
            if action == "stop":
                m.stop(job_id)
                return t("jobs.msg_stopping"), None, gr.skip(), job_id
            if action == "cancel":
                m.cancel(job_id, wait=m.cancel_grace_s + 2)
                return t("jobs.msg_cancelled"), None, gr.skip(), job_id
            if action == "resume":
                m.resume(job_id)
                return t("jobs.msg_resumed"), None, gr.skip(), job_id
            if action == "clone":
                return t("jobs.msg_clone"), None, m.config_text(job_id), job_id
            if armed != job_id:
                return t("jobs.msg_confirm_delete", id=job_id), job_id, gr.skip(), job_id
            m.delete(job_id)
            return t("jobs.msg_deleted", id=job_id), None, "", None
        except UserError as e:
            return f"⚠️ {ui.error_text(e)}", None, gr.skip(), job_id

    return handler


def _changed(seen: dict, key: str, value: Any, make) -> Any:
    """The new value when it differs from what the browser shows (tracked by digest), else gr.skip()."""
    d = _digest(value)
    if seen.get(key) == d:
        return gr.skip()
    seen[key] = d
    return make()


def _figure(records: list[dict], info: Any) -> Any:
    from core.jobs.plots import metrics_figure

    return metrics_figure(records, title=info.name)


def _kinds() -> list[tuple[str, str]]:
    from core.config.registry import KINDS

    return [(k, k) for k in sorted(KINDS)]
