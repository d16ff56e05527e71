"""The Data tab: import (upload or a path inside the workspace) with format detection and a correctable column
mapping, a paged table and a conversation view, statistics with plotly, and convert / export / split / dedupe.

Every handler is a thin call into core.data; errors a user can cause come back as messages, never tracebacks. Large
datasets are read a page at a time (core.data.preview keeps a line index), so a 100k-row file never travels whole to
the browser.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gradio as gr

from core.data.errors import DataError, RowInvalid
from core.data.formats import FORMAT_LABELS, FORMATS, detect, full_mapping, normalize
from core.workspace import PathOutsideWorkspace
from studio.ui import UIContext

N_MAP = 5  # mapping dropdowns (the most fields a format has: alpaca's instruction/input/output/system/history)
PREVIEW_ROWS = 10
CELL = 300  # characters per table cell


def _cell(v) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return s if len(s) <= CELL else s[: CELL - 1] + "…"


def rows_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells for a page of rows: id and the main text fields first, then whatever else the rows have."""
    first = ["id", "instruction", "input", "output", "category", "reason", "line", "file"]
    seen: list[str] = []
    for r in rows:
        seen += [k for k in r if k not in seen]
    cols = [c for c in first if c in seen] + [c for c in seen if c not in first][:6]
    return cols, [[_cell(r.get(c, "")) for c in cols] for r in rows]


def unmapped(field: str) -> str:
    """The column name an unmapped field points to: none has it, so the field reads as missing, by name."""
    return f"({field}: not mapped)"


def _md_error(e: Exception) -> str:
    text = e.report() if isinstance(e, DataError) else str(e)
    return "```\n" + text + "\n```"


def build(ui: UIContext) -> None:
    from core.data import store

    ws = ui.workspace
    t = ui.t

    def names() -> list[str]:
        return store.dataset_names(ws)

    # ------------------------------------------------------------------------------------------------ import
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
            on_error = ui.reg("data.on_error", gr.Radio(
                choices=[(t("data.on_error_skip"), "skip"), (t("data.on_error_stop"), "stop")], value="skip",
                label=t("data.on_error"), elem_id="data-on-error"))
            overwrite = ui.reg("data.overwrite", gr.Checkbox(False, label=t("data.overwrite")))
        ui.reg("data.mapping_help", gr.Markdown(t("data.mapping_help")), "value")
        with gr.Row():
            maps = [gr.Dropdown(choices=[], value=None, label=f"field {i + 1}", visible=False, allow_custom_value=True,
                                elem_id=f"data-map-{i}") for i in range(N_MAP)]
        preview = ui.reg("data.preview", gr.Dataframe(label=t("data.preview"), interactive=False, wrap=True,
                                                      max_height=320, elem_id="data-import-preview", visible=False))
        problems = gr.Markdown(elem_id="data-problems")
        do_import = ui.reg("data.import", gr.Button(t("data.import"), variant="primary", elem_id="data-import"))
        import_result = gr.Markdown(elem_id="data-import-result")

    def map_updates(fmt_key: str | None, cols: list[str], mapping: dict[str, str] | None):
        if not fmt_key:
            return [gr.update(visible=False, value=None) for _ in range(N_MAP)]
        m = full_mapping(fmt_key, mapping)
        fields = FORMATS[fmt_key]["required"] + FORMATS[fmt_key]["optional"]
        out = []
        for i in range(N_MAP):
            if i < len(fields):
                f = fields[i]
                req = f in FORMATS[fmt_key]["required"]
                val = m.get(f) if m.get(f) in cols else None
                out.append(gr.update(visible=True, label=f"{f}{' *' if req else ''}", value=val or "",
                                     choices=[("—", "")] + [(c, c) for c in cols]))
            else:
                out.append(gr.update(visible=False, value=None, choices=[]))
        return out

    def preview_rows(src: str, fmt_key: str | None, mapping: dict[str, str]):
        if not src or not fmt_key:
            return gr.update(value=None, visible=False), ""
        from core.data.io import peek_records
        from core.data.rows import IdAssigner

        rows, errs = [], []
        ids = IdAssigner()
        for rec in peek_records(src, PREVIEW_ROWS):
            if rec.error:
                errs.append(f"- line {rec.line}: {rec.error}")
                continue
            try:
                rows += [ids.assign(r) for r in normalize(rec.value, fmt_key, mapping)]
            except RowInvalid as e:
                errs.append(f"- line {rec.line}: {e}")
        cols, cells = rows_table(rows[:PREVIEW_ROWS])
        msg = (t("data.preview_problems") + "\n" + "\n".join(errs)) if errs else ""
        return gr.update(value={"headers": cols, "data": cells} if cells else None, visible=bool(cells)), msg

    def inspect(src: Path | None, err: str = ""):
        blank = [gr.update(visible=False) for _ in range(N_MAP)]
        hidden = gr.update(value=None, visible=False)
        if src is None:
            return ["", [], f"⚠️ {err}", gr.update(value=None), gr.update(), *blank, hidden, ""]
        from core.data.io import peek_records

        try:
            recs = peek_records(src, 50)
        except DataError as e:
            return ["", [], _md_error(e), gr.update(value=None), gr.update(), *blank, hidden, ""]
        det = detect([r.value for r in recs if r.error is None])
        label = FORMAT_LABELS.get(det.format or "", "")
        msg = (t("data.detected", format=label, file=src.name) if det.format else t("data.not_detected", file=src.name))
        if det.note:
            msg += f"\n\n_{det.note}_"
        mapping = det.mapping
        prev, probs = preview_rows(str(src), det.format, full_mapping(det.format, mapping) if det.format else {})
        return [str(src), det.columns, msg, gr.update(value=det.format), gr.update(value=src.stem),
                *map_updates(det.format, det.columns, mapping), prev, probs]

    inspect_outputs = [source, columns, detected, fmt, name, *maps, preview, problems]

    def on_upload(file_path: str | None):
        if not file_path:
            return inspect(None, t("data.no_file"))
        up = ws.datasets / "uploads"
        up.mkdir(parents=True, exist_ok=True)
        dst = up / Path(file_path).name
        shutil.copyfile(file_path, dst)
        return inspect(dst)

    def on_path(text: str):
        try:
            p = ws.resolve(text)
        except PathOutsideWorkspace as e:
            return inspect(None, str(e))
        if not p.is_file():
            return inspect(None, t("data.not_a_file", path=text))
        return inspect(p)

    upload.upload(on_upload, upload, inspect_outputs)
    load_path.click(on_path, path, inspect_outputs)
    path.submit(on_path, path, inspect_outputs)

    def current_mapping(fmt_key: str | None, *vals) -> dict[str, str]:
        if not fmt_key:
            return {}
        fields = FORMATS[fmt_key]["required"] + FORMATS[fmt_key]["optional"]
        return {f: (v or unmapped(f)) for f, v in zip(fields, vals, strict=False)}

    def on_format(src: str, cols: list[str], fmt_key: str | None):
        updates = map_updates(fmt_key, cols, None)
        prev, probs = preview_rows(src, fmt_key, full_mapping(fmt_key) if fmt_key else {})
        return [*updates, prev, probs]

    fmt.input(on_format, [source, columns, fmt], [*maps, preview, problems])

    def on_mapping(src: str, fmt_key: str | None, *vals):
        return preview_rows(src, fmt_key, current_mapping(fmt_key, *vals))

    for m in maps:
        m.input(on_mapping, [source, fmt, *maps], [preview, problems])

    # ------------------------------------------------------------------------------------------------ browse
    with ui.reg("data.browse_title", gr.Accordion(t("data.browse_title"), open=True)):
        with gr.Row():
            dataset = ui.reg("data.dataset", gr.Dropdown(choices=names(), value=None, label=t("data.dataset"),
                                                         elem_id="data-dataset", scale=3))
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

    def file_for(ds: str | None, rejects: bool) -> Path | None:
        if not ds:
            return None
        p = store.rejects_path(ws, ds) if rejects else store.dataset_path(ws, ds)
        return p if p.exists() else None

    def show_page(ds: str | None, pg, size, rejects: bool):
        from core.data.preview import read_page

        p = file_for(ds, rejects)
        if p is None:
            msg = t("data.no_rejects") if (ds and rejects) else ""
            return gr.update(value=None, visible=False), 1, "", msg
        rows, pages = read_page(p, int(pg or 1), int(size or 20))
        pg = min(max(1, int(pg or 1)), pages)
        cols, cells = rows_table(rows)
        meta = store.read_meta(ws, ds)
        from core.data.preview import row_count

        n = row_count(p)
        text = t("data.info", rows=n, format=meta.get("format", "?"), source=meta.get("source", "?"),
                 created_by=meta.get("created_by", "?"))
        if meta.get("growing"):
            text += " · " + t("data.growing")
        return gr.update(value={"headers": cols, "data": cells} if cells else None, visible=bool(cells)), pg, \
            t("data.pages", page=pg, pages=pages), text

    page_outputs = [table, page, pages_md, info]
    dataset.change(lambda ds, s, r: show_page(ds, 1, s, r), [dataset, page_size, show_rejects], page_outputs)
    show_rejects.change(lambda ds, s, r: show_page(ds, 1, s, r), [dataset, page_size, show_rejects], page_outputs)
    page_size.change(lambda ds, s, r: show_page(ds, 1, s, r), [dataset, page_size, show_rejects], page_outputs)
    page.submit(show_page, [dataset, page, page_size, show_rejects], page_outputs)
    prev_btn.click(lambda ds, p, s, r: show_page(ds, int(p or 1) - 1, s, r), [dataset, page, page_size, show_rejects],
                   page_outputs)
    next_btn.click(lambda ds, p, s, r: show_page(ds, int(p or 1) + 1, s, r), [dataset, page, page_size, show_rejects],
                   page_outputs)
    refresh.click(lambda ds: gr.update(choices=names(), value=ds if ds in names() else None), dataset, dataset)
    dataset.focus(lambda: gr.update(choices=names()), None, dataset, show_progress="hidden")

    def on_row(ds: str | None, pg, size, rejects: bool, evt: gr.SelectData):
        from core.data.preview import read_row
        from core.data.rows import to_messages

        p = file_for(ds, rejects)
        if p is None or evt.index is None:
            return "", [], ""
        idx = (int(pg or 1) - 1) * int(size or 20) + int(evt.index[0])
        row = read_row(p, idx)
        if row is None:
            return "", [], ""
        dump = json.dumps(row, ensure_ascii=False, indent=2)
        if rejects or not (row.get("instruction") or row.get("messages")):
            return "", [], dump
        msgs = to_messages(row)
        sys_text = "\n".join(m["content"] for m in msgs if m["role"] == "system")
        chat = [{"role": m["role"], "content": m["content"]} for m in msgs if m["role"] in ("user", "assistant")]
        if row.get("chosen") is not None and row.get("rejected") is not None:
            chat.append({"role": "assistant", "content": f"**{t('data.rejected_answer')}**\n\n{row['rejected']}"})
        return (f"**system:** {sys_text}" if sys_text else ""), chat, dump

    table.select(on_row, [dataset, page, page_size, show_rejects], [system_md, convo, row_json])
    for trigger in (dataset.change, show_rejects.change):
        trigger(lambda: ("", [], ""), None, [system_md, convo, row_json], show_progress="hidden")

    # ------------------------------------------------------------------------------------------------ stats
    with ui.reg("data.stats_title", gr.Accordion(t("data.stats_title"), open=False)):
        with gr.Row():
            tokenizer = ui.reg("data.tokenizer", gr.Dropdown(
                choices=_tokenizer_choices(ws), value=None, allow_custom_value=True, label=t("data.tokenizer"),
                info=t("data.tokenizer_info"), elem_id="data-tokenizer"), "label", "info")
            do_stats = ui.reg("data.compute_stats", gr.Button(t("data.compute_stats"), elem_id="data-compute-stats"))
        stats_md = gr.Markdown(elem_id="data-stats-summary")
        stats_table = ui.reg("data.fields_table", gr.Dataframe(label=t("data.fields_table"), interactive=False))
        with gr.Row():
            plot_chars = gr.Plot(elem_id="data-plot-chars", show_label=False)
            plot_tokens = gr.Plot(elem_id="data-plot-tokens", show_label=False)

    def on_stats(ds: str | None, tok: str | None):
        from core.data.stats import compute_stats, percentiles

        if not ds:
            return t("data.pick_dataset"), None, None, None
        tok_dir = None
        if tok:
            try:
                tok_dir = _tokenizer_dir(ws, tok)
            except (PathOutsideWorkspace, FileNotFoundError) as e:
                return f"⚠️ {e}", None, None, None
        try:
            st = compute_stats(store.dataset_path(ws, ds), tok_dir)
        except (OSError, ValueError, DataError) as e:
            return f"⚠️ {e}", None, None, None
        md = t("data.stats_summary", rows=st.rows, dup_ins=st.duplicate_instructions, dup_pairs=st.duplicate_pairs,
               multi=st.multi_turn)
        if st.tokenizer:
            md += "\n\n" + t("data.stats_tokens", tokenizer=st.tokenizer, sample=st.token_sample,
                             prompt=_pct(percentiles(st.prompt_tokens)), output=_pct(percentiles(st.output_tokens)))
        fields = {"headers": [t("data.col_field"), t("data.col_present"), t("data.col_empty"), t("data.col_missing"),
                              t("data.col_mean"), t("data.col_max")], "data": st.summary_rows()}
        return md, fields, _hist({k: f.chars for k, f in st.fields.items() if f.chars}, t("data.plot_chars")), \
            (_hist({"prompt": st.prompt_tokens, "output": st.output_tokens},
                   t("data.plot_tokens", tokenizer=st.tokenizer)) if st.tokenizer else None)

    do_stats.click(on_stats, [dataset, tokenizer], [stats_md, stats_table, plot_chars, plot_tokens])

    # ------------------------------------------------------------------------------------------------ convert
    with ui.reg("data.convert_title", gr.Accordion(t("data.convert_title"), open=False)):
        with gr.Row():
            exp_fmt = ui.reg("data.export_format", gr.Dropdown(
                choices=[("OpenAI messages (JSONL)", "messages"), ("Alpaca (JSON)", "alpaca"),
                         ("ShareGPT (JSON)", "sharegpt"), ("EasyDistill labeled (JSON)", "easydistill"),
                         ("DPO prompt/chosen/rejected (JSONL)", "dpo"), ("OmniThought (JSON)", "omnithought")],
                value="messages", label=t("data.export_format"), elem_id="data-export-format"))
            keep_ids = ui.reg("data.keep_ids", gr.Checkbox(True, label=t("data.keep_ids")))
            lf = ui.reg("data.llamafactory", gr.Checkbox(False, label=t("data.llamafactory")))
            do_export = ui.reg("data.export", gr.Button(t("data.export"), elem_id="data-export"))
        export_file = ui.reg("data.export_file", gr.File(label=t("data.export_file"), interactive=False))
        export_md = gr.Markdown(elem_id="data-export-result")
        with gr.Row():
            share = ui.reg("data.eval_share", gr.Slider(0.01, 0.5, value=0.1, step=0.01, label=t("data.eval_share")))
            seed = ui.reg("data.seed", gr.Number(42, label=t("data.seed"), precision=0))
            do_split = ui.reg("data.split", gr.Button(t("data.split"), elem_id="data-split"))
        with gr.Row():
            dedupe_by = ui.reg("data.dedupe_by", gr.Dropdown(
                choices=[(t("data.by_instruction"), "instruction"), (t("data.by_pair"), "instruction_output"),
                         (t("data.by_content"), "content")], value="instruction", label=t("data.dedupe_by")))
            do_dedupe = ui.reg("data.dedupe", gr.Button(t("data.dedupe"), elem_id="data-dedupe"))
        ops_md = gr.Markdown(elem_id="data-ops-result")

    def on_export(ds: str | None, f: str, ids: bool, with_lf: bool):
        from core.data.convert import EXPORT_FORMATS, export_rows, llamafactory_entry, update_dataset_info

        if not ds:
            return None, t("data.pick_dataset")
        try:
            rows, _ = store.load_rows(ws, ds)
            out = store.exports_dir(ws) / f"{ds}-{f}{EXPORT_FORMATS[f]}"
            res = export_rows(rows, f, out, keep_id=ids)
            msg = res.summary() + f" — `{ws.relative(out)}`"
            if with_lf:
                try:
                    info = update_dataset_info(out.parent, out.stem, llamafactory_entry(out.name, f))
                    msg += "\n\n" + t("data.lf_written", path=ws.relative(info), name=out.stem)
                except ValueError as e:
                    msg += f"\n\n⚠️ {e}"
            return str(out), msg
        except (DataError, ValueError, OSError) as e:
            return None, _md_error(e)

    do_export.click(on_export, [dataset, exp_fmt, keep_ids, lf], [export_file, export_md])

    def on_split(ds: str | None, sh: float, sd):
        from core.data.ops import split_dataset

        if not ds:
            return t("data.pick_dataset"), gr.update()
        try:
            tn, nt, en, ne = split_dataset(ws, ds, float(sh), int(sd or 42))
        except (DataError, ValueError) as e:
            return _md_error(e), gr.update()
        return t("data.split_done", train=tn, n_train=nt, eval=en, n_eval=ne), gr.update(choices=names())

    do_split.click(on_split, [dataset, share, seed], [ops_md, dataset])

    def on_dedupe(ds: str | None, by: str):
        from core.data.ops import dedupe_dataset

        if not ds:
            return t("data.pick_dataset"), gr.update()
        try:
            new, kept, removed = dedupe_dataset(ws, ds, by)
        except (DataError, ValueError) as e:
            return _md_error(e), gr.update()
        return t("data.dedupe_done", name=new, kept=kept, removed=removed), gr.update(choices=names())

    do_dedupe.click(on_dedupe, [dataset, dedupe_by], [ops_md, dataset])

    # ------------------------------------------------------------------------------------------------ import action
    def on_import(src: str, fmt_key: str | None, ds_name: str, mode: str, over: bool, *vals):
        if not src:
            return t("data.no_file"), gr.update()
        if not fmt_key:
            return t("data.pick_format"), gr.update()
        mapping = current_mapping(fmt_key, *vals)
        missing = [f for f in FORMATS[fmt_key]["required"] if mapping.get(f, unmapped(f)) == unmapped(f)]
        if missing:
            return t("data.map_required", fields=", ".join(missing)), gr.update()
        try:
            res = store.import_file(ws, src, ds_name or Path(src).stem, fmt_key, mapping, mode, overwrite=over,
                                    source_label=Path(src).name)
        except (DataError, PathOutsideWorkspace) as e:
            return _md_error(e), gr.update()
        msg = "✅ " + res.summary()
        if res.errors:
            msg += "\n\n" + "\n".join(f"- {e}" for e in res.errors[:10])
            if len(res.errors) > 10:
                msg += f"\n- … {len(res.errors) - 10} more"
        return msg, gr.update(choices=names(), value=res.name)

    do_import.click(on_import, [source, fmt, name, on_error, overwrite, *maps], [import_result, dataset])

    # Lists built above are a snapshot of build time: every new page load refreshes them (jobs add datasets).
    from gradio.context import Context

    if Context.root_block is not None:
        Context.root_block.load(lambda: (gr.update(choices=names()), gr.update(choices=_tokenizer_choices(ws))),
                                None, [dataset, tokenizer], show_progress="hidden")


def _tokenizer_choices(ws) -> list[str]:
    return sorted(p.parent.name for p in ws.models.glob("*/tokenizer.json")) if ws.models.exists() else []


def _tokenizer_dir(ws, ref: str) -> Path:
    cand = ws.models / ref
    if "/" not in ref and cand.is_dir():
        return cand
    p = ws.resolve(ref)
    if not p.is_dir():
        raise FileNotFoundError(f"'{ref}' is not a model folder in the workspace")
    return p


def _pct(p: dict[str, int]) -> str:
    return " · ".join(f"{k} {v}" for k, v in p.items()) if p else "—"


def _hist(series: dict[str, list[int]], title: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, values in series.items():
        if values:
            fig.add_trace(go.Histogram(x=values, name=name, opacity=0.65, nbinsx=40))
    fig.update_layout(barmode="overlay", title=title, height=320, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      legend={"orientation": "h", "y": -0.15})
    return fig
