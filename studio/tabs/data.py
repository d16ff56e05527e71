"""The Data tab: import (upload or a path inside the workspace) with format detection and a correctable column
mapping, a paged table and a conversation view, statistics with plotly, and convert / export / split / dedupe.
Statistics, export, split and dedupe read the whole dataset, so they run as data jobs (core.data.job: streamed in
bounded memory, with progress and Stop), never in the studio's process; the section shows the job's status line and,
when it ends, what it made.

Widgets and wiring only: every handler is a call into core.data (import_form, view, stats, plots, convert, ops,
store) plus the words around its answer, from studio/i18n. Errors a person can fix (core.errors.UserError) come
back as messages; anything else is a bug and is not caught here. Large datasets are read a page at a time
(core.data.view), so a 100k-row file never travels whole to the browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from core.data import store
from core.data.convert import EXPORT_LABELS
from core.data.formats import FORMAT_LABELS, FORMATS
from core.data.import_form import (
    field_choices,
    format_fields,
    mapping_from_values,
    missing_required,
    preview_import,
    source_path,
)
from core.data.job import op_job, result_of
from core.data.plots import chars_figure, tokens_figure
from core.data.stats import DatasetStats, percentile_text, tokenizer_choices, tokenizer_dir
from core.data.store import ImportResult
from core.data.view import browse_file, page_view, row_on_page, row_view, rows_table
from core.errors import UserError
from core.jobs.summary import status_line
from core.said import Said
from studio.i18n import has
from studio.job_panel import live_timer
from studio.ui import UIContext

N_MAP = max(len(format_fields(f)) for f in FORMATS)  # mapping dropdowns: as many as the widest format has fields
MAX_LISTED_ERRORS = 10  # bad records listed under an import result (the rejects file has them all)


def _error_md(ui: UIContext, e: UserError) -> str:
    """A user error as Markdown, in the page's language: one line with a warning sign, a multi-line report as a code
    block."""
    text = ui.error_text(e)
    return f"```\n{text}\n```" if "\n" in text else f"⚠️ {text}"


def _table(columns: list[str], cells: list[list[str]]) -> dict:
    """A Dataframe update that hides the table when there is nothing to show."""
    return gr.update(value={"headers": columns, "data": cells} if cells else None, visible=bool(cells))


def build(ui: UIContext) -> None:
    form = _import_section(ui)
    dataset = _browse_section(ui)
    tokenizer = _stats_section(ui, dataset)
    _convert_section(ui, dataset)
    _wire_import(ui, form, dataset)

    # Lists built above are a snapshot of build time: every new page load refreshes them (jobs add datasets).
    from gradio.context import Context

    ws = ui.workspace
    if Context.root_block is not None:
        Context.root_block.load(
            lambda: (gr.update(choices=store.dataset_names(ws)), gr.update(choices=tokenizer_choices(ws))),
            None, [dataset, tokenizer], show_progress="hidden")


# ---------------------------------------------------------------------------------------------------------- import


@dataclass
class _ImportForm:
    """The import widgets the Import button reads (wired last, once the dataset picker it updates exists)."""

    source: gr.State
    fmt: gr.Dropdown
    name: gr.Textbox
    on_error: gr.Radio
    overwrite: gr.Checkbox
    maps: list[gr.Dropdown]
    button: gr.Button
    result: gr.Markdown
    lf: dict[str, Any]  # the LLaMA-Factory dataset_info.json import's widgets


def _map_updates(fmt: str | None, columns: list[str], mapping: dict[str, str] | None) -> list[dict]:
    """One update per mapping dropdown: the format's fields (required ones starred) over the file's columns."""
    if not fmt:
        return [gr.update(visible=False, value=None) for _ in range(N_MAP)]
    choices = [("—", "")] + [(c, c) for c in columns]
    shown = [gr.update(visible=True, label=f"{c.name}{' *' if c.required else ''}", value=c.column, choices=choices)
             for c in field_choices(fmt, columns, mapping)]
    return shown + [gr.update(visible=False, value=None, choices=[]) for _ in range(N_MAP - len(shown))]


def _preview(ui: UIContext, src: str, fmt: str | None, mapping: dict[str, str] | None) -> tuple[dict, str]:
    """The preview table and the problems of the first records."""
    if not src or not fmt:
        return gr.update(value=None, visible=False), ""
    try:
        pv = preview_import(src, fmt, mapping)
    except UserError as e:
        return gr.update(value=None, visible=False), _error_md(ui, e)
    problems = "\n".join(f"- {ui.t('data.problem_line', line=line, reason=ui.said(reason))}"
                         for line, reason in pv.problems)
    return _table(*rows_table(pv.rows)), (f"{ui.t('data.preview_problems')}\n{problems}" if problems else "")


def _inspect(ui: UIContext, src: Path | None, message: str = "") -> list:
    """Everything the form shows about a source file: detection, mapping dropdowns, preview (or just `message`)."""
    nothing = ["", [], message, gr.update(value=None), gr.update(), *[gr.update(visible=False) for _ in range(N_MAP)],
               gr.update(value=None, visible=False), ""]
    if src is None:
        return nothing
    try:
        det, _ = store.detect_file(src)
    except UserError as e:
        return ["", [], _error_md(ui, e), *nothing[3:]]
    label = FORMAT_LABELS.get(det.format or "", "")
    msg = ui.t("data.detected", format=label, file=src.name) if det.format else \
        ui.t("data.not_detected", file=src.name)
    if det.note:
        msg += f"\n\n_{det.note}_"
    prev, problems = _preview(ui, str(src), det.format, det.full_mapping())
    return [str(src), det.columns, msg, gr.update(value=det.format), gr.update(value=src.stem),
            *_map_updates(det.format, det.columns, det.mapping), prev, problems]


def _import_section(ui: UIContext) -> _ImportForm:
    t = ui.t
    with ui.reg("data.import_title", gr.Accordion(t("data.import_title"), open=True)):
        with gr.Row():
            upload = ui.reg("data.upload", gr.File(
                label=t("data.upload"), file_count="single", type="filepath", elem_id="data-upload",
                file_types=[".json", ".jsonl", ".csv", ".tsv", ".parquet"], height=120))
            with gr.Column():
                path = ui.reg("data.path", gr.Textbox(label=t("data.path"), placeholder=t("data.path_placeholder"),
                                                      elem_id="data-path"), "label", "placeholder")
                load_path = ui.reg("data.load_path", gr.Button(t("data.load_path"), elem_id="data-load-path"))
        source = gr.State("")
        columns = gr.State([])
        detected = gr.Markdown(elem_id="data-detected")
        with gr.Row():
            fmt = ui.reg("data.format", gr.Dropdown(
                choices=[(FORMAT_LABELS[f], f) for f in FORMATS], value=None, label=t("data.format"),
                info=t("data.format_info"), elem_id="data-format"), "label", "info")
            name = ui.reg("data.name", gr.Textbox(label=t("data.name"), elem_id="data-name"))
            modes = (("data.on_error_skip", "skip"), ("data.on_error_stop", "stop"))
            on_error = ui.reg("data.on_error", gr.Radio(choices=ui.choices(modes), value="skip",
                                                        label=t("data.on_error"), elem_id="data-on-error"),
                              choices=modes)
            overwrite = ui.reg("data.overwrite", gr.Checkbox(False, label=t("data.overwrite")))
        ui.reg("data.mapping_help", gr.Markdown(t("data.mapping_help")), "value")
        with gr.Row():
            maps = [gr.Dropdown(choices=[], value=None, label=f"#{i + 1}", visible=False,  # labelled when shown
                                allow_custom_value=True, elem_id=f"data-map-{i}") for i in range(N_MAP)]
        preview = ui.reg("data.preview", gr.Dataframe(label=t("data.preview"), interactive=False, wrap=True,
                                                      max_height=320, elem_id="data-import-preview", visible=False))
        problems = gr.Markdown(elem_id="data-problems")
        button = ui.reg("data.import", gr.Button(t("data.import"), variant="primary", elem_id="data-import"))
        result = gr.Markdown(elem_id="data-import-result")
        lf = _lf_import_section(ui)

    def on_upload(file_path: str | None) -> list:
        if not file_path:
            return _inspect(ui, None, f"⚠️ {t('data.no_file')}")
        try:
            return _inspect(ui, store.take_upload(ui.workspace, file_path))
        except UserError as e:
            return _inspect(ui, None, _error_md(ui, e))

    def on_path(text: str) -> list:
        try:
            src = source_path(ui.workspace, text)
        except UserError as e:
            return _inspect(ui, None, _error_md(ui, e))
        return _inspect(ui, src) if src else _inspect(ui, None, f"⚠️ {t('data.not_a_file', path=text)}")

    def on_format(src: str, cols: list[str], fmt_key: str | None) -> list:
        return [*_map_updates(fmt_key, cols, None), *_preview(ui, src, fmt_key, None)]

    def on_mapping(src: str, fmt_key: str | None, *values: str) -> tuple[dict, str]:
        return _preview(ui, src, fmt_key, mapping_from_values(fmt_key, values))

    inspect_outputs = [source, columns, detected, fmt, name, *maps, preview, problems]
    upload.upload(on_upload, upload, inspect_outputs)
    load_path.click(on_path, path, inspect_outputs)
    path.submit(on_path, path, inspect_outputs)
    fmt.input(on_format, [source, columns, fmt], [*maps, preview, problems])
    for m in maps:
        m.input(on_mapping, [source, fmt, *maps], [preview, problems])
    return _ImportForm(source, fmt, name, on_error, overwrite, maps, button, result, lf)


def _lf_import_section(ui: UIContext) -> dict[str, Any]:
    """A LLaMA-Factory dataset_info.json (a workspace path, or uploaded with its data files) and one of its entries
    to import (core.data.llamafactory_import, confined to the workspace as every visitor's path is)."""
    t = ui.t
    w: dict[str, Any] = {"info": gr.State("")}
    with ui.reg("data.lf_title", gr.Accordion(t("data.lf_title"), open=False, elem_id="data-lf")):
        ui.reg("data.lf_help", gr.Markdown(t("data.lf_help")), "value")
        with gr.Row():
            w["upload"] = ui.reg("data.lf_upload", gr.File(label=t("data.lf_upload"), file_count="multiple",
                                                           type="filepath", elem_id="data-lf-upload", height=100))
            with gr.Column():
                w["path"] = ui.reg("data.lf_path", gr.Textbox(label=t("data.lf_path"), elem_id="data-lf-path",
                                                              placeholder="datasets/lf/dataset_info.json"))
                w["load"] = ui.reg("data.lf_load", gr.Button(t("data.lf_load"), elem_id="data-lf-load"))
        with gr.Row():
            w["entry"] = ui.reg("data.lf_entry", gr.Dropdown(choices=[], value=None, label=t("data.lf_entry"),
                                                             elem_id="data-lf-entry"))
            w["name"] = ui.reg("data.name", gr.Textbox(label=t("data.name"), elem_id="data-lf-name"))
            w["button"] = ui.reg("data.lf_import", gr.Button(t("data.lf_import"), variant="primary",
                                                             elem_id="data-lf-import"))
        w["result"] = gr.Markdown(elem_id="data-lf-result")
    return w


def _import_message(ui: UIContext, res: ImportResult) -> str:
    """What an import did, with the first bad records it set aside."""
    msg = "✅ " + ui.t("data.imported", rows=res.rows, name=res.name, format=res.format)
    if res.errors:
        rejects = res.rejects_path.name if res.rejects_path else "?"
        msg += ui.t("data.imported_rejects", n=len(res.errors), file=rejects)
        msg += "\n\n" + "\n".join(f"- {ui.row_text(e)}" for e in res.errors[:MAX_LISTED_ERRORS])
        if len(res.errors) > MAX_LISTED_ERRORS:
            msg += "\n- " + ui.t("data.more_errors", n=len(res.errors) - MAX_LISTED_ERRORS)
    if res.unused:  # nothing dropped silently: columns the format does not read, with the records holding them
        items = [ui.t("data.unused_item", column=c if kept == c else f"{c} → {kept}", n=n)
                 for c, kept, n in res.unused_items()]
        msg += "\n\n" + ui.t("data.imported_unused", columns=", ".join(items))
    return msg + "".join(f"\n\n_{ui.said(n)}_" for n in res.notes)


def _wire_import(ui: UIContext, form: _ImportForm, dataset: gr.Dropdown) -> None:
    """The Import button: check the mapping, import, and select the new dataset in the browser."""
    ws, t = ui.workspace, ui.t

    def on_import(src: str, fmt_key: str | None, ds_name: str, mode: str, over: bool, *values: str):
        if not src:
            return t("data.no_file"), gr.update()
        if not fmt_key:
            return t("data.pick_format"), gr.update()
        mapping = mapping_from_values(fmt_key, values)
        missing = missing_required(fmt_key, mapping)
        if missing:
            return t("data.map_required", fields=", ".join(missing)), gr.update()
        try:
            res = store.import_file(ws, src, ds_name or Path(src).stem, fmt_key, mapping, mode, overwrite=over,
                                    source_label=Path(src).name)
        except UserError as e:
            return _error_md(ui, e), gr.update()
        return _import_message(ui, res), gr.update(choices=store.dataset_names(ws), value=res.name)

    form.button.click(on_import, [form.source, form.fmt, form.name, form.on_error, form.overwrite, *form.maps],
                      [form.result, dataset])
    _wire_lf_import(ui, form, dataset)


def lf_entries(ui: UIContext, text: str | None, uploads: list[str] | None = None) -> tuple[str, dict, str, str]:
    """A dataset_info.json named by a workspace path, or among uploaded files (copied into datasets/uploads/ with
    the data files it names): (its path, the entry picker, a dataset name, a message)."""
    from core.data.llamafactory_import import INFO_FILE, dataset_name, visitor_entries

    none = "", gr.update(choices=[], value=None), ""
    try:
        if uploads:
            copies = [store.take_upload(ui.workspace, f) for f in uploads]
            info = next((c for c in copies if c.name == INFO_FILE), None)
            if info is None:
                return *none, f"⚠️ {ui.t('data.lf_no_info')}"
            text = str(info)
        if not (text or "").strip():
            return *none, f"⚠️ {ui.t('data.lf_no_info')}"
        path, names = visitor_entries(ui.workspace, text.strip())
    except UserError as e:
        return *none, _error_md(ui, e)
    first = names[0] if names else None
    return (str(path), gr.update(choices=names, value=first), dataset_name(first) if first else "",
            ui.t("data.lf_entries", n=len(names), file=ui.workspace.shown(path)))


def lf_import(ui: UIContext, info: str, entry: str | None, ds_name: str, mode: str, over: bool) -> tuple[str, Any]:
    """Import one entry of the dataset_info.json: (the message, the new dataset's name or None)."""
    from core.data.llamafactory_import import import_llamafactory

    if not info or not entry:
        return ui.t("data.lf_no_info"), None
    try:
        res = import_llamafactory(ui.workspace, info, entry, (ds_name or "").strip() or None, mode, over,
                                  confined=True)
    except UserError as e:
        return _error_md(ui, e), None
    return _import_message(ui, res), res.name


def _wire_lf_import(ui: UIContext, form: _ImportForm, dataset: gr.Dropdown) -> None:
    from core.data.llamafactory_import import dataset_name

    w, ws = form.lf, ui.workspace
    found = [w["info"], w["entry"], w["name"], w["result"]]
    w["load"].click(lambda text: lf_entries(ui, text), w["path"], found)
    w["path"].submit(lambda text: lf_entries(ui, text), w["path"], found)
    w["upload"].upload(lambda files: lf_entries(ui, None, files or []), w["upload"], found)
    w["entry"].input(lambda e: dataset_name(e) if e else "", w["entry"], w["name"])

    def on_import(info: str, entry: str | None, ds_name: str, mode: str, over: bool) -> tuple[str, Any]:
        msg, name = lf_import(ui, info, entry, ds_name, mode, over)
        return msg, gr.update(choices=store.dataset_names(ws), value=name) if name else gr.update()

    w["button"].click(on_import, [w["info"], w["entry"], w["name"], form.on_error, form.overwrite],
                      [w["result"], dataset])


# ---------------------------------------------------------------------------------------------------------- browse


def _browse_section(ui: UIContext) -> gr.Dropdown:
    """The dataset picker, its pages and the row view; returns the picker (the other sections act on it)."""
    ws, t = ui.workspace, ui.t
    with ui.reg("data.browse_title", gr.Accordion(t("data.browse_title"), open=True)):
        with gr.Row():
            dataset = ui.reg("data.dataset", gr.Dropdown(choices=store.dataset_names(ws), value=None,
                                                         label=t("data.dataset"), elem_id="data-dataset", scale=3))
            refresh = ui.reg("data.refresh", gr.Button(t("data.refresh"), scale=0, min_width=120,
                                                       elem_id="data-refresh"))
            show_rejects = ui.reg("data.show_rejects", gr.Checkbox(False, label=t("data.show_rejects"), scale=1))
        info = gr.Markdown(elem_id="data-info")
        with gr.Row():
            prev_btn = ui.reg("data.prev", gr.Button(t("data.prev"), size="sm", scale=0, min_width=100))
            page = ui.reg("data.page", gr.Number(1, label=t("data.page"), precision=0, minimum=1, scale=0,
                                                 min_width=120, elem_id="data-page"))
            next_btn = ui.reg("data.next", gr.Button(t("data.next"), size="sm", scale=0, min_width=100))
            page_size = ui.reg("data.page_size", gr.Dropdown([20, 50, 100], value=20, label=t("data.page_size"),
                                                             scale=0, min_width=120))
            pages_md = gr.Markdown(elem_id="data-pages")
        table = ui.reg("data.table", gr.Dataframe(label=t("data.table"), interactive=False, wrap=True,
                                                  max_height=480, elem_id="data-table", visible=False))
        ui.reg("data.row_help", gr.Markdown(t("data.row_help")), "value")
        with gr.Row():
            with gr.Column(scale=3):
                system_md = gr.Markdown(elem_id="data-system")
                convo = ui.reg("data.conversation", gr.Chatbot(
                    label=t("data.conversation"), height=420, elem_id="data-conversation",
                    reasoning_tags=[("<think>", "</think>")]))
            with gr.Column(scale=2):
                row_json = ui.reg("data.row_json", gr.Code(label=t("data.row_json"), language="json", lines=18,
                                                           elem_id="data-row-json"))

    def show_page(ds: str | None, pg: Any, size: Any, rejects: bool) -> tuple:
        hidden = gr.update(value=None, visible=False)
        try:
            path = browse_file(ws, ds, rejects)
            if path is None:
                return hidden, 1, "", t("data.no_rejects") if (ds and rejects) else ""
            pv = page_view(path, pg, size)
            meta = store.read_meta(ws, ds)
        except UserError as e:
            return hidden, 1, "", _error_md(ui, e)
        text = t("data.info", rows=pv.rows, format=meta.get("format", "?"), source=meta.get("source", "?"),
                 created_by=meta.get("created_by", "?"))
        if meta.get("growing"):
            text += " · " + t("data.growing")
        return _table(pv.columns, pv.cells), pv.page, t("data.pages", page=pv.page, pages=pv.pages), text

    def on_row(ds: str | None, pg: Any, size: Any, rejects: bool, evt: gr.SelectData) -> tuple[str, list, str]:
        path = browse_file(ws, ds, rejects)
        row = row_on_page(path, pg, size, evt.index[0]) if path and evt.index is not None else None
        if row is None:
            return "", [], ""
        view = row_view(row, is_reject=rejects)
        chat = list(view.chat)
        if view.rejected is not None:
            chat.append({"role": "assistant", "content": f"**{t('data.rejected_answer')}**\n\n{view.rejected}"})
        return (t("data.system_turn", text=view.system) if view.system else ""), chat, view.json

    page_inputs = [dataset, page, page_size, show_rejects]
    page_outputs = [table, page, pages_md, info]
    for trigger in (dataset.change, show_rejects.change, page_size.change):
        trigger(lambda ds, s, r: show_page(ds, 1, s, r), [dataset, page_size, show_rejects], page_outputs)
    page.submit(show_page, page_inputs, page_outputs)
    ui.on_language(show_page, page_inputs, page_outputs)
    prev_btn.click(lambda ds, p, s, r: show_page(ds, int(p or 1) - 1, s, r), page_inputs, page_outputs)
    next_btn.click(lambda ds, p, s, r: show_page(ds, int(p or 1) + 1, s, r), page_inputs, page_outputs)
    refresh.click(lambda ds: gr.update(choices=(n := store.dataset_names(ws)), value=ds if ds in n else None),
                  dataset, dataset)
    dataset.focus(lambda: gr.update(choices=store.dataset_names(ws)), None, dataset, show_progress="hidden")
    table.select(on_row, page_inputs, [system_md, convo, row_json])
    for trigger in (dataset.change, show_rejects.change):
        trigger(lambda: ("", [], ""), None, [system_md, convo, row_json], show_progress="hidden")
    return dataset


# ---------------------------------------------------------------------------------------------------- data jobs


def submit_op(ui: UIContext, kind: str, ds: str | None, **values: Any) -> tuple[str | None, str]:
    """A whole-dataset button: submit data job `kind` over the picked dataset (it runs in a job process, streamed,
    never in the studio's). Returns (job id, message), or (None, why not)."""
    if not ds:
        return None, ui.t("data.pick_dataset")
    try:
        job_id = ui.jobs().submit(op_job(ui.workspace, kind, ds, **values))
    except UserError as e:
        return None, _error_md(ui, e)
    return job_id, ui.t("data.job_started", job=job_id)


def op_state(ui: UIContext, job_id: str | None) -> tuple[str, bool, dict | None, str]:
    """(the job's status line, whether it still runs, what it made once it succeeded, its kind)."""
    if not job_id:
        return "", False, None, ""
    try:
        info = ui.jobs().get(job_id)
    except UserError as e:  # deleted in the Jobs tab meanwhile
        return f"⚠️ {ui.error_text(e)}", False, None, ""
    return status_line(info, ui.job_words()), not info.finished, result_of(info), info.kind


def op_outcome(ui: UIContext, kind: str, res: dict) -> tuple[str | None, str, str]:
    """What a finished split / dedupe / export job says: (exported file, export message, split/dedupe message)."""
    t = ui.t
    if kind == "data_split":
        return None, "", t("data.split_done", train=res["train"], n_train=res["train_rows"], eval=res["eval"],
                           n_eval=res["eval_rows"])
    if kind == "data_dedupe":
        return None, "", t("data.dedupe_done", name=res["name"], kept=res["kept"], removed=res["removed"])
    msg = t("data.exported", rows=res["written"], path=ui.workspace.relative(res["path"]))
    if res["first_skipped"]:
        reason = Said.of(res.get("first_skipped_reason")) or res["first_skipped"][1]
        msg += t("data.export_skipped", n=res["skipped"], id=res["first_skipped"][0], reason=ui.said(reason))
    for key, n in (res.get("lost") or {}).items():  # what written rows could not keep (a pair's rejected answer)
        msg += t(f"data.export_lost_{key}", n=n, fmt=res.get("format", "")) if has(f"data.export_lost_{key}") else \
            f"; {n} {key}"
    if res["info_path"]:
        msg += "\n\n" + t("data.lf_written", path=ui.workspace.relative(res["info_path"]), name=res["info_name"])
    return res["path"], msg, ""


def _stats_view(ui: UIContext, st: DatasetStats) -> tuple:
    """The summary, fields table and plots of a statistics job's result."""
    t = ui.t
    md = t("data.stats_summary", rows=st.rows, dup_ins=st.duplicate_instructions, dup_pairs=st.duplicate_pairs,
           multi=st.multi_turn)
    if st.tokenizer:
        md += "\n\n" + t("data.stats_tokens", tokenizer=st.tokenizer, sample=st.token_sample,
                         prompt=percentile_text(st.prompt_tokens), output=percentile_text(st.output_tokens))
    headers = [t(f"data.col_{c}") for c in ("field", "present", "empty", "missing", "mean", "max")]
    return md, {"headers": headers, "data": st.summary_rows()}, chars_figure(st, t("data.plot_chars")), \
        tokens_figure(st, t("data.plot_tokens", tokenizer=st.tokenizer))


def _job_row(ui: UIContext, prefix: str) -> tuple[Any, Any]:
    """A data job's status line and its Stop button."""
    with gr.Row():
        line = gr.Markdown(elem_id=f"data-{prefix}-job")
        stop = ui.reg("data.stop_job", gr.Button(ui.t("data.stop_job"), size="sm", scale=0, min_width=100,
                                                 elem_id=f"data-{prefix}-stop"))
    return line, stop


# ---------------------------------------------------------------------------------------------------------- stats


def _stats_section(ui: UIContext, dataset: gr.Dropdown) -> gr.Dropdown:
    """Statistics of the picked dataset, computed by a data_stats job; returns the tokenizer picker (refreshed on
    page load)."""
    ws, t = ui.workspace, ui.t
    with ui.reg("data.stats_title", gr.Accordion(t("data.stats_title"), open=False)):
        with gr.Row():
            tokenizer = ui.reg("data.tokenizer", gr.Dropdown(
                choices=tokenizer_choices(ws), value=None, allow_custom_value=True, label=t("data.tokenizer"),
                info=t("data.tokenizer_info"), elem_id="data-tokenizer"), "label", "info")
            button = ui.reg("data.compute_stats", gr.Button(t("data.compute_stats"), elem_id="data-compute-stats"))
        job_md, stop = _job_row(ui, "stats")
        summary = gr.Markdown(elem_id="data-stats-summary")
        fields = ui.reg("data.fields_table", gr.Dataframe(label=t("data.fields_table"), interactive=False))
        with gr.Row():
            plot_chars = gr.Plot(elem_id="data-plot-chars", show_label=False)
            plot_tokens = gr.Plot(elem_id="data-plot-tokens", show_label=False)
    job = gr.State(None)
    timer = live_timer(ui, 1.0)
    shown = [summary, fields, plot_chars, plot_tokens]

    def on_stats(ds: str | None, tok: str | None) -> tuple:
        try:
            tok = str(tokenizer_dir(ws, tok)) if (tok or "").strip() else None  # confined here, read by the job
        except UserError as e:
            return None, _error_md(ui, e), *(None,) * 4, gr.Timer(active=False)
        job_id, msg = submit_op(ui, "data_stats", ds, tokenizer=tok)
        return job_id, msg, *(None,) * 4, gr.Timer(active=job_id is not None)

    def tick(job_id: str | None) -> tuple:
        line, runs, res, _ = op_state(ui, job_id)
        view = _stats_view(ui, DatasetStats.from_dict(res["stats"])) if res else (gr.skip(),) * 4
        return (line or gr.skip()), *view, gr.Timer(active=runs)

    button.click(on_stats, [dataset, tokenizer], [job, job_md, *shown, timer])
    timer.tick(tick, job, [job_md, *shown, timer], show_progress="hidden")
    stop.click(lambda j: ui.job_action("stop", j, "data.job_stopping", "data.no_job"), job, job_md)
    ui.on_language(tick, [job], [job_md, *shown, timer])
    return tokenizer


# ---------------------------------------------------------------------------------------------------------- convert


def _convert_section(ui: UIContext, dataset: gr.Dropdown) -> None:
    """Export to other tools' formats, seeded train/eval split, dedupe: each a data job that writes a new file, never
    the source; the section follows the last one started."""
    ws, t = ui.workspace, ui.t
    with ui.reg("data.convert_title", gr.Accordion(t("data.convert_title"), open=False)):
        with gr.Row():
            exp_fmt = ui.reg("data.export_format", gr.Dropdown(
                choices=[(label, f) for f, label in EXPORT_LABELS.items()], value="messages",
                label=t("data.export_format"), elem_id="data-export-format"))
            keep_ids = ui.reg("data.keep_ids", gr.Checkbox(True, label=t("data.keep_ids")))
            lf = ui.reg("data.llamafactory", gr.Checkbox(False, label=t("data.llamafactory")))
            do_export = ui.reg("data.export", gr.Button(t("data.export"), elem_id="data-export"))
        export_file = ui.reg("data.export_file", gr.File(label=t("data.export_file"), interactive=False))
        export_md = gr.Markdown(elem_id="data-export-result")
        with gr.Row():
            share = ui.reg("data.eval_share", gr.Slider(0.01, 0.5, value=0.1, step=0.01, label=t("data.eval_share"),
                                                        info=t("data.eval_share_info")), "label", "info")
            seed = ui.reg("data.seed", gr.Number(42, label=t("data.seed"), precision=0))
            do_split = ui.reg("data.split", gr.Button(t("data.split"), elem_id="data-split"))
        with gr.Row():
            keys = (("data.by_instruction", "instruction"), ("data.by_pair", "instruction_output"),
                    ("data.by_content", "content"))
            dedupe_by = ui.reg("data.dedupe_by", gr.Dropdown(choices=ui.choices(keys), value="instruction",
                                                             label=t("data.dedupe_by")), choices=keys)
            do_dedupe = ui.reg("data.dedupe", gr.Button(t("data.dedupe"), elem_id="data-dedupe"))
        job_md, stop = _job_row(ui, "ops")
        ops_md = gr.Markdown(elem_id="data-ops-result")
    job = gr.State(None)
    timer = live_timer(ui, 1.0)

    def started(kind: str, ds: str | None, **values: Any) -> tuple:
        job_id, msg = submit_op(ui, kind, ds, **values)
        return job_id, msg, None, "", "", gr.Timer(active=job_id is not None)

    def tick(job_id: str | None) -> tuple:
        line, runs, res, kind = op_state(ui, job_id)
        if not res:
            return (line or gr.skip()), *(gr.skip(),) * 4, gr.Timer(active=runs)
        path, exported, done = op_outcome(ui, kind, res)
        names = gr.update(choices=store.dataset_names(ws)) if kind != "data_export" else gr.skip()
        return line, path, exported, done, names, gr.Timer(active=False)

    outputs = [job, job_md, export_file, export_md, ops_md, timer]
    do_export.click(lambda ds, fmt, ids, with_lf: started("data_export", ds, format=fmt, keep_ids=ids,
                                                         llamafactory=with_lf),
                    [dataset, exp_fmt, keep_ids, lf], outputs)
    do_split.click(lambda ds, sh, sd: started("data_split", ds, eval_share=float(sh), seed=int(sd or 42)),
                   [dataset, share, seed], outputs)
    do_dedupe.click(lambda ds, by: started("data_dedupe", ds, by=by), [dataset, dedupe_by], outputs)
    timer.tick(tick, job, [job_md, export_file, export_md, ops_md, dataset, timer], show_progress="hidden")
    stop.click(lambda j: ui.job_action("stop", j, "data.job_stopping", "data.no_job"), job, job_md)
    ui.on_language(tick, [job], [job_md, export_file, export_md, ops_md, dataset, timer])
