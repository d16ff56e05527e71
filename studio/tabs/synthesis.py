"""The Synthesis tab: pick an input dataset, an operator, a teacher, a prompt template (editable, saved in the
workspace) and sampling; "Try on N rows" shows inputs next to outputs; "Run on all" submits a resumable job whose
progress (rows/s, tokens, rejects, ETA) is polled from its run folder. The equivalent YAML config and
`easydistill --config` command are always shown. Instruction balancing: classify with the teacher, then resample
toward the category shares of an editable table.

Handlers build a SynthJob from the form and call core (core.synth.trial, core.jobs); a local teacher is never loaded
in this process (the trial runs in a child process, the job in a worker).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.config.base import BackendSpec, EndpointSpec, Sampling
from core.config.data_jobs import SynthJob
from core.config.errors import ConfigError
from core.data.errors import DataError
from core.data.ops import DEFAULT_SHARES
from core.synth.templates import PLACEHOLDERS, TemplateError, check_template, default_template
from core.workspace import PathOutsideWorkspace
from studio.ui import UIContext

OPERATORS = ["label", "expand", "refine", "extract", "cot_generate", "long2short", "short2long", "classify"]
DEFAULT_TEMPLATE = "(default)"


def _shares(table: Any) -> dict[str, float]:
    """Category -> share from the editable table (a pandas DataFrame, or rows as lists)."""
    rows = table.values.tolist() if hasattr(table, "values") else (table or [])
    out: dict[str, float] = {}
    for r in rows:
        if len(r) < 2 or r[0] in (None, "") or str(r[0]).strip() == "":
            continue
        try:
            out[str(r[0]).strip()] = float(r[1] or 0)
        except (TypeError, ValueError):
            raise ValueError(f"share of '{r[0]}' is not a number: {r[1]!r}") from None
    return out


def build(ui: UIContext) -> None:
    from core.data import store
    from core.synth import templates as tpl

    ws = ui.workspace
    t = ui.t

    def model_names() -> list[str]:
        return sorted(p.name for p in ws.models.iterdir() if p.is_dir()) if ws.models.exists() else []

    def endpoint_names() -> list[str]:
        from core.models.registry import load_endpoints

        try:
            return [e.name for e in load_endpoints(ws)]
        except (OSError, ValueError, TypeError):
            return []

    # ------------------------------------------------------------------------------------------------ form
    with gr.Row():
        inp = ui.reg("synthesis.input", gr.Dropdown(choices=store.dataset_names(ws), value=None,
                                                    label=t("synthesis.input"), elem_id="synth-input", scale=3))
        refresh = ui.reg("synthesis.refresh", gr.Button(t("synthesis.refresh"), scale=0, min_width=110,
                                                        elem_id="synth-refresh"))
        op = ui.reg("synthesis.operator", gr.Dropdown(
            choices=[(t(f"synthesis.op_{o}"), o) for o in OPERATORS], value="label", label=t("synthesis.operator"),
            elem_id="synth-operator", scale=2))
        out_name = ui.reg("synthesis.output", gr.Textbox(label=t("synthesis.output"), elem_id="synth-output",
                                                         placeholder=t("synthesis.output_placeholder"), scale=2),
                          "label", "placeholder")
    op_help = gr.Markdown(t("synthesis.help_label"), elem_id="synth-op-help")

    with ui.reg("synthesis.teacher_title", gr.Accordion(t("synthesis.teacher_title"), open=True)):
        with gr.Row():
            ttype = ui.reg("synthesis.backend", gr.Radio(
                choices=[(t("synthesis.backend_local"), "transformers"), (t("synthesis.backend_api"), "openai")],
                value="transformers", label=t("synthesis.backend"), elem_id="synth-backend"))
            model = ui.reg("synthesis.model", gr.Dropdown(
                choices=model_names(), value=None, allow_custom_value=True, label=t("synthesis.model"),
                info=t("synthesis.model_info"), elem_id="synth-model"), "label", "info")
            batch = ui.reg("synthesis.batch_size", gr.Number(8, label=t("synthesis.batch_size"), precision=0,
                                                             minimum=1))
        with gr.Row(visible=False) as api_row:
            endpoint = ui.reg("synthesis.endpoint", gr.Dropdown(choices=endpoint_names(), value=None,
                                                                label=t("synthesis.endpoint"), scale=1))
            base_url = ui.reg("synthesis.base_url", gr.Textbox(label=t("synthesis.base_url"), elem_id="synth-base-url",
                                                               placeholder="http://127.0.0.1:8000/v1", scale=2))
            served = ui.reg("synthesis.served_model", gr.Textbox(label=t("synthesis.served_model"), scale=1,
                                                                 elem_id="synth-served-model"))
            key_env = ui.reg("synthesis.api_key_env", gr.Textbox(label=t("synthesis.api_key_env"), scale=1,
                                                                 placeholder="DASHSCOPE_API_KEY"))
            conc = ui.reg("synthesis.concurrency", gr.Number(8, label=t("synthesis.concurrency"), precision=0,
                                                             minimum=1, maximum=1024))

    with ui.reg("synthesis.template_title", gr.Accordion(t("synthesis.template_title"), open=False)):
        with gr.Row():
            tchoice = ui.reg("synthesis.template", gr.Dropdown(
                choices=[DEFAULT_TEMPLATE, *tpl.list_templates(ws)], value=DEFAULT_TEMPLATE,
                label=t("synthesis.template"), elem_id="synth-template", scale=2))
            tname = ui.reg("synthesis.template_name", gr.Textbox(label=t("synthesis.template_name"), scale=2))
            tsave = ui.reg("synthesis.template_save", gr.Button(t("synthesis.template_save"), scale=0,
                                                                min_width=140))
        placeholders_md = gr.Markdown(t("synthesis.placeholders", names="{instruction}"))
        ttext = ui.reg("synthesis.template_text", gr.Code(default_template("label"), language=None, lines=10,
                                                          label=t("synthesis.template_text"),
                                                          elem_id="synth-template-text"))
        tmsg = gr.Markdown()

    with ui.reg("synthesis.sampling_title", gr.Accordion(t("synthesis.sampling_title"), open=False)):
        with gr.Row():
            temp = ui.reg("synthesis.temperature", gr.Slider(0, 2, value=0.8, step=0.05,
                                                             label=t("synthesis.temperature")))
            top_p = ui.reg("synthesis.top_p", gr.Slider(0.05, 1, value=1.0, step=0.05, label=t("synthesis.top_p")))
            max_new = ui.reg("synthesis.max_new_tokens", gr.Number(512, label=t("synthesis.max_new_tokens"),
                                                                   precision=0, minimum=1, elem_id="synth-max-new"))
            sseed = ui.reg("synthesis.sampling_seed", gr.Number(777, label=t("synthesis.sampling_seed"), precision=0))
        system = ui.reg("synthesis.system_prompt", gr.Textbox("You are a helpful assistant.",
                                                              label=t("synthesis.system_prompt")))
        with gr.Row():
            n_ctx = ui.reg("synthesis.n_ctx", gr.Number(3, label=t("synthesis.n_ctx"), precision=0, minimum=0,
                                                        visible=False))
            n_out = ui.reg("synthesis.n_out", gr.Number(10, label=t("synthesis.n_out"), precision=0, minimum=1,
                                                        visible=False))
            limit = ui.reg("synthesis.limit", gr.Number(0, label=t("synthesis.limit"), precision=0, minimum=0))
            seed = ui.reg("synthesis.seed", gr.Number(42, label=t("synthesis.seed"), precision=0))
            retries = ui.reg("synthesis.parse_retries", gr.Number(1, label=t("synthesis.parse_retries"), precision=0,
                                                                  minimum=0, maximum=10))

    with ui.reg("synthesis.balance_title", gr.Accordion(t("synthesis.balance_title"), open=False,
                                                        visible=False)) as balance_box:
        ui.reg("synthesis.balance_help", gr.Markdown(t("synthesis.balance_help")), "value")
        shares = ui.reg("synthesis.shares", gr.Dataframe(
            value=[[k, v] for k, v in DEFAULT_SHARES.items()], headers=["category", "share"],
            datatype=["str", "number"], interactive=True, column_count=(2, "fixed"), label=t("synthesis.shares"),
            max_height=300, elem_id="synth-shares"))
        with gr.Row():
            do_balance = ui.reg("synthesis.balance_after", gr.Checkbox(True, label=t("synthesis.balance_after")))
            btotal = ui.reg("synthesis.balance_total", gr.Number(0, label=t("synthesis.balance_total"),
                                                                 precision=0, minimum=0))
            upsample = ui.reg("synthesis.upsample", gr.Checkbox(False, label=t("synthesis.upsample")))
            balance_now = ui.reg("synthesis.balance_now", gr.Button(t("synthesis.balance_now")))
        balance_md = gr.Markdown()

    # ------------------------------------------------------------------------------------------------ actions
    with gr.Row():
        n_try = ui.reg("synthesis.n_try", gr.Number(5, label=t("synthesis.n_try"), precision=0, minimum=1,
                                                    maximum=50, scale=0, min_width=120))
        try_btn = ui.reg("synthesis.try", gr.Button(t("synthesis.try"), elem_id="synth-try"))
        run_btn = ui.reg("synthesis.run", gr.Button(t("synthesis.run"), variant="primary", elem_id="synth-run"))
        retry_btn = ui.reg("synthesis.retry", gr.Button(t("synthesis.retry"), elem_id="synth-retry"))
        stop_btn = ui.reg("synthesis.stop", gr.Button(t("synthesis.stop"), variant="stop", elem_id="synth-stop"))
    msg = gr.Markdown(elem_id="synth-message")
    trial = ui.reg("synthesis.trial", gr.Dataframe(label=t("synthesis.trial"), interactive=False, wrap=True,
                                                   max_height=520, elem_id="synth-trial", visible=False))
    job_state = gr.State("")
    job_md = gr.Markdown(elem_id="synth-job")
    timer = gr.Timer(2.0, active=False)
    with ui.reg("synthesis.config_title", gr.Accordion(t("synthesis.config_title"), open=False)):
        yaml_box = ui.reg("synthesis.yaml", gr.Code(language="yaml", label=t("synthesis.yaml"), lines=14,
                                                    interactive=False, elem_id="synth-yaml"))
        cmd_md = gr.Markdown(elem_id="synth-command")

    form = [inp, op, out_name, ttype, model, batch, base_url, served, key_env, conc, tchoice, ttext, temp, top_p,
            max_new, sseed, system, n_ctx, n_out, limit, seed, retries, shares, do_balance, btotal, upsample]

    def template_ref(operator: str, choice: str, text: str, output: str) -> tuple[str | None, str | None]:
        """(template reference for the config, name under which the edited text must be saved first)."""
        text = (text or "").rstrip("\n")
        if choice and choice != DEFAULT_TEMPLATE:
            p = tpl.template_path(ws, choice)
            if p.is_file() and p.read_text(encoding="utf-8").rstrip("\n") == text:
                return choice, None
        if text == default_template(operator):
            return None, None
        name = f"{output or 'synth'}.{operator}"
        return name, name

    def make_config(values: list, retry: bool = False) -> tuple[SynthJob, str | None, str]:
        (i, o, out, ty, mdl, bs, url, srv, kenv, cc, tch, ttx, tp, tpp, mx, ss, sysp, nc, no, lim, sd, pr, sh, bal,
         bt, ups) = values
        if not i:
            raise ValueError(t("synthesis.need_input"))
        output = (out or "").strip() or f"{i}-{o}"
        if "/" in output or "\\" in output:
            raise ValueError(t("synthesis.output_name_only"))
        store.check_name(output)
        ref, to_save = template_ref(o, tch, ttx, output)
        if ty == "openai":
            if not (url or "").strip():
                raise ValueError(t("synthesis.need_url"))
            teacher = BackendSpec(type="openai", model=(srv or "").strip(), endpoint=EndpointSpec(
                base_url=url.strip(), model=(srv or "").strip() or None, api_key_env=(kenv or "").strip() or None,
                concurrency=int(cc or 8)))
        else:
            if not (mdl or "").strip():
                raise ValueError(t("synthesis.need_model"))
            from core.models.registry import resolve_model

            folder = resolve_model(mdl.strip(), ws, confine=True)
            teacher = BackendSpec(type="transformers", model=mdl.strip() if folder.parent == ws.models else str(folder),
                                  batch_size=int(bs or 8))
        extra: dict[str, Any] = {}
        if o == "classify":
            table = _shares(sh)
            if bal:  # the categories are the table's (SynthJob takes them from target_shares)
                extra["target_shares"] = table
                extra["balance_total"] = int(bt) if bt else None
                extra["balance_upsample"] = bool(ups)
            else:
                extra["categories"] = list(table)
        cfg = SynthJob(
            name=f"synth {o} {i}", operator=o, input=i, output=output, teacher=teacher,
            sampling=Sampling(temperature=float(tp), top_p=float(tpp), max_new_tokens=int(mx or 512),
                              seed=int(ss) if ss is not None else None),
            template=ref, system_prompt=sysp or "", num_in_context_samples=int(nc if nc is not None else 3),
            num_output_samples=int(no or 10), limit=int(lim) if lim else None, seed=int(sd or 42),
            parse_retries=int(pr or 0), retry_rejects=retry, **extra,
        )
        return cfg, to_save, ttx

    def preview(*values):
        from core.config.io import dump_yaml

        try:
            cfg, to_save, _ = make_config(list(values))
        except (ValueError, ConfigError, DataError, PathOutsideWorkspace) as e:
            return f"# {t('synthesis.form_incomplete')}: {e}", ""
        except Exception as e:  # a model that cannot be resolved yet etc.: show it, keep the UI alive
            return f"# {type(e).__name__}: {e}", ""
        text = dump_yaml(cfg)
        if to_save:
            text = f"# {t('synthesis.template_saved_as', name=to_save)}\n" + text
        fname = f"{cfg.output}.yaml"
        return text, t("synthesis.command", file=fname, workspace=ws.root)

    for c in form:
        if hasattr(c, "change"):
            c.change(preview, form, [yaml_box, cmd_md], show_progress="hidden")

    # operator switch: help text, template, visible options
    def on_operator(o: str):
        names = ", ".join("{" + p + "}" for p in PLACEHOLDERS[o])
        return (t(f"synthesis.help_{o}"), default_template(o), DEFAULT_TEMPLATE,
                t("synthesis.placeholders", names=names), gr.update(visible=o == "expand"),
                gr.update(visible=o == "expand"), gr.update(visible=o == "classify"))

    op.change(on_operator, op, [op_help, ttext, tchoice, placeholders_md, n_ctx, n_out, balance_box])
    ttype.change(lambda ty: (gr.update(visible=ty == "openai"), gr.update(visible=ty != "openai"),
                             gr.update(visible=ty != "openai")), ttype, [api_row, model, batch])

    def on_endpoint(name: str | None):
        from core.models.registry import load_endpoints

        for e in load_endpoints(ws):
            if e.name == name:
                return e.base_url, e.model or "", e.api_key_env or ""
        return gr.update(), gr.update(), gr.update()

    endpoint.change(on_endpoint, endpoint, [base_url, served, key_env])

    def on_template_choice(o: str, choice: str):
        if not choice or choice == DEFAULT_TEMPLATE:
            return default_template(o), ""
        try:
            return tpl.load_template(o, choice, ws), choice
        except TemplateError as e:
            return gr.update(), f"⚠️ {e}"

    tchoice.input(on_template_choice, [op, tchoice], [ttext, tname])

    def on_save_template(o: str, name: str, text: str):
        try:
            p = tpl.save_template(ws, name, o, text)
        except TemplateError as e:
            return f"⚠️ {e}", gr.update()
        return t("synthesis.template_saved", path=ws.relative(p)), gr.update(
            choices=[DEFAULT_TEMPLATE, *tpl.list_templates(ws)], value=p.stem)

    tsave.click(on_save_template, [op, tname, ttext], [tmsg, tchoice])

    def refresh_lists(current: str | None):
        names = store.dataset_names(ws)
        return (gr.update(choices=names, value=current if current in names else None),
                gr.update(choices=model_names()), gr.update(choices=endpoint_names()))

    refresh.click(refresh_lists, inp, [inp, model, endpoint])
    # Datasets appear while the page is open (imports in the Data tab, finished jobs): list them afresh on focus.
    inp.focus(lambda: gr.update(choices=store.dataset_names(ws)), None, inp, show_progress="hidden")
    model.focus(lambda: gr.update(choices=model_names()), None, model, show_progress="hidden")
    from gradio.context import Context

    if Context.root_block is not None:  # lists built above are a build-time snapshot: refresh on every page load
        Context.root_block.load(lambda: (*refresh_lists(None), gr.update(
            choices=[DEFAULT_TEMPLATE, *tpl.list_templates(ws)])), None, [inp, model, endpoint, tchoice],
            show_progress="hidden")

    # ------------------------------------------------------------------------------------------------ try / run
    def on_try(n, *values):
        from core.synth.trial import TrialError, try_operator

        try:
            cfg, _, text = make_config(list(values))
            check_template(cfg.operator, text)
        except (ValueError, ConfigError, DataError, TemplateError, PathOutsideWorkspace) as e:
            return f"⚠️ {e}", gr.update()
        except Exception as e:
            return f"⚠️ {type(e).__name__}: {e}", gr.update()
        try:
            res = try_operator(ws, cfg, int(n or 5), template_text=text)
        except (TrialError, DataError, TemplateError, PathOutsideWorkspace) as e:
            return f"⚠️ {e}", gr.update()
        except Exception as e:  # an endpoint that refuses, a model that fails to load: a message, not a traceback
            return f"⚠️ {type(e).__name__}: {e}", gr.update()
        ok = sum(r.status == "ok" for r in res.rows)
        head = t("synthesis.trial_done", ok=ok, n=len(res.rows), seconds=res.seconds,
                 tokens=res.prompt_tokens + res.completion_tokens)
        cols = [t("synthesis.col_id"), t("synthesis.col_input"), t("synthesis.col_output"), t("synthesis.col_status")]
        data = [[r.id, r.input, r.output, r.status] for r in res.rows]
        return head, gr.update(value={"headers": cols, "data": data}, visible=True)

    try_btn.click(on_try, [n_try, *form], [msg, trial])

    def submit(retry: bool, *values):
        try:
            cfg, to_save, text = make_config(list(values), retry=retry)
            if to_save:
                tpl.save_template(ws, to_save, cfg.operator, text)
            else:
                check_template(cfg.operator, text)
            job_id = ui.jobs().submit(cfg)
        except (ValueError, ConfigError, DataError, TemplateError, PathOutsideWorkspace) as e:
            return f"⚠️ {e}", gr.update(), gr.update()
        except Exception as e:
            return f"⚠️ {type(e).__name__}: {e}", gr.update(), gr.update()
        return t("synthesis.submitted", job=job_id, output=cfg.output), job_id, gr.Timer(active=True)

    run_btn.click(lambda *v: submit(False, *v), form, [msg, job_state, timer])
    retry_btn.click(lambda *v: submit(True, *v), form, [msg, job_state, timer])

    def poll(job_id: str):
        if not job_id:
            return "", gr.Timer(active=False)
        try:
            jm = ui.jobs()
            info = jm.get(job_id)
            metrics = [m for m in jm.metrics(job_id) if "step" in m]
        except Exception as e:
            return f"⚠️ {e}", gr.Timer(active=False)
        last = metrics[-1] if metrics else {}
        frac = info.progress or 0.0
        bar = "█" * int(frac * 20) + "░" * (20 - int(frac * 20))
        from core.jobs.progress import format_eta

        text = t("synthesis.job_status", job=job_id, status=info.status, bar=bar, pct=round(100 * frac, 1),
                 done=last.get("step", 0), total=last.get("total", "?"), ok=last.get("ok", 0),
                 rejected=last.get("rejected", 0), rps=last.get("rows_per_s", 0), tokens=last.get("tokens", 0),
                 eta=format_eta(info.eta_s))
        if info.reason:
            text += f"\n\n{info.reason}"
        return text, gr.Timer(active=not info.finished)

    timer.tick(poll, job_state, [job_md, timer], show_progress="hidden")

    def on_stop(job_id: str):
        return ui.job_action("stop", job_id, "synthesis.stopping", "synthesis.no_job")

    stop_btn.click(on_stop, job_state, msg)

    def on_balance_now(i: str | None, sh, bt, ups, sd):
        from core.data.ops import balance

        if not i:
            return t("synthesis.need_input"), gr.update()
        try:
            rows, _ = store.load_rows(ws, i)
            if not any("category" in r for r in rows):
                return t("synthesis.need_category"), gr.update()
            out, rep = balance(rows, _shares(sh), int(bt) if bt else None, int(sd or 42), bool(ups))
            name = f"{i}-balanced"
            store.save_rows(ws, name, out, created_by="balance", source=i)
        except (ValueError, DataError) as e:
            return f"⚠️ {e}", gr.update()
        text = t("synthesis.balanced", name=name, rows=len(out))
        text += "\n\n| category | before | target | after |\n|---|---|---|---|\n" + "\n".join(
            f"| {c} | {rep.before.get(c, 0)} | {rep.target.get(c, 0)} | {rep.after.get(c, 0)} |"
            for c in sorted(set(rep.target) | set(rep.before)))
        return text, gr.update(choices=store.dataset_names(ws))

    balance_now.click(on_balance_now, [inp, shares, btotal, upsample, seed], [balance_md, inp])
