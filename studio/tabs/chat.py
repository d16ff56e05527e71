"""The Chat tab: the arena (teacher | student | a third column on demand, streaming side by side) and evaluation.

Thin on purpose: conversation state, rendering, streaming, stats and model servers live in core.chat; evaluation in
core.eval (see studio/tabs/chat_eval.py). Models run in serve jobs (Load / Unload), never in this process.
"""

from __future__ import annotations

import json
import time
from typing import Any

import gradio as gr

from core.chat.arena import ColumnRequest, respond
from core.chat.servers import FAILED_S, LOADING, NOT_LOADED, QUEUED_S, READY, STOPPING_S, ModelServers, model_choices
from core.chat.session import ChatSession
from core.config.base import Sampling
from core.llm.base import SamplingParams
from studio.ui import UIContext

N_COLS = 3
STATUS_ICONS = {NOT_LOADED: "⚪", QUEUED_S: "⏳", LOADING: "⏳", READY: "🟢", STOPPING_S: "⏹️", FAILED_S: "🔴",
                "stopped": "⚪"}


def label_info(ui: UIContext, key: str) -> dict[str, str]:
    """label= and info= of a component registered with ("label", "info")."""
    return {"label": ui.t(key), "info": ui.t(f"{key}_info")}


def _default_model(choices: list[tuple[str, str]], hint: str) -> str | None:
    for _, value in choices:
        if hint in value.lower():
            return value
    return None


def build(ui: UIContext) -> None:
    servers = ModelServers(ui.jobs(), ui.workspace)
    with gr.Tabs(elem_id="eds-chat-tabs"):
        with ui.reg("chat.arena_tab", gr.Tab(ui.t("chat.arena_tab"), id="arena", elem_id="eds-chat-arena")):
            build_arena(ui, servers)
        with ui.reg("chat.eval_tab", gr.Tab(ui.t("chat.eval_tab"), id="evaluate", elem_id="eds-chat-eval")):
            from studio.tabs.chat_eval import build_eval

            build_eval(ui)


def build_arena(ui: UIContext, servers: ModelServers) -> None:
    choices = model_choices(ui.workspace)
    defaults = [_default_model(choices, "teacher"), _default_model(choices, "student"), None]
    with gr.Row():
        system = ui.reg("chat.system", gr.Textbox(label=ui.t("chat.system"), lines=1, scale=4,
                                                 placeholder=ui.t("chat.system_placeholder"),
                                                 elem_id="eds-chat-system"), "label", "placeholder")
        refresh = ui.reg("chat.refresh", gr.Button(ui.t("chat.refresh"), scale=0, min_width=120,
                                                   elem_id="eds-chat-refresh"), "value")
        third = ui.reg("chat.add_column", gr.Button(ui.t("chat.add_column"), scale=0, min_width=160,
                                                    elem_id="eds-chat-add-column"), "value")
    with ui.reg("chat.sampling", gr.Accordion(ui.t("chat.sampling"), open=False, elem_id="eds-chat-sampling")):
        with gr.Row():
            temperature = ui.reg("chat.temperature", gr.Slider(0, 2, value=0.7, step=0.05,
                                                               label=ui.t("chat.temperature")))
            top_p = ui.reg("chat.top_p", gr.Slider(0.05, 1, value=0.95, step=0.05, label=ui.t("chat.top_p")))
            max_tokens = ui.reg("chat.max_tokens", gr.Slider(16, 4096, value=512, step=16,
                                                             label=ui.t("chat.max_tokens")))
            seed = ui.reg("chat.seed", gr.Number(value=None, precision=0, label=ui.t("chat.seed"),
                                                 elem_id="eds-chat-seed"), "label")

    cols: list[dict[str, Any]] = []
    with gr.Row(equal_height=False):
        for i in range(N_COLS):
            c: dict[str, Any] = {}
            with gr.Column(visible=i < 2, elem_id=f"eds-chat-col{i}") as c["box"]:
                key = ("chat.teacher", "chat.student", "chat.third")[i]
                c["title"] = ui.reg(key, gr.Markdown(ui.t(key), elem_classes="eds-chat-title"), "value")
                c["model"] = ui.reg("chat.model", gr.Dropdown(choices=choices, value=defaults[i],
                                                              label=ui.t("chat.model"), elem_id=f"eds-chat-model{i}"))
                ui.shared[f"chat.model{i}"] = c["model"]  # the guided flow fills teacher | student here
                with gr.Row():
                    c["load"] = ui.reg("chat.load", gr.Button(ui.t("chat.load"), size="sm", variant="primary",
                                                              elem_id=f"eds-chat-load{i}"), "value")
                    c["unload"] = ui.reg("chat.unload", gr.Button(ui.t("chat.unload"), size="sm",
                                                                  elem_id=f"eds-chat-unload{i}"), "value")
                c["status"] = gr.Markdown(_status_text(ui, servers.status(defaults[i] or "")),
                                          elem_id=f"eds-chat-status{i}")
                c["chat"] = gr.Chatbot(height=440, elem_id=f"eds-chat-bot{i}", show_label=False,
                                       buttons=["copy", "copy_all"], latex_delimiters=[
                                           {"left": "$$", "right": "$$", "display": True},
                                           {"left": "$", "right": "$", "display": False}])
                c["stats"] = gr.Markdown("", elem_id=f"eds-chat-stats{i}")
                with ui.reg("chat.column_settings", gr.Accordion(ui.t("chat.column_settings"), open=False)):
                    c["override"] = ui.reg("chat.override", gr.Checkbox(False, label=ui.t("chat.override")))
                    c["temperature"] = ui.reg("chat.temperature", gr.Slider(0, 2, value=0.7, step=0.05,
                                                                           label=ui.t("chat.temperature")))
                    c["max_tokens"] = ui.reg("chat.max_tokens", gr.Slider(16, 4096, value=512, step=16,
                                                                         label=ui.t("chat.max_tokens")))
                    c["backend"] = ui.reg("chat.backend", gr.Radio(
                        ["transformers", "vllm"], value="transformers", **label_info(ui, "chat.backend")),
                        "label", "info")
            cols.append(c)
    with gr.Row():
        msg = ui.reg("chat.message", gr.Textbox(show_label=False, placeholder=ui.t("chat.message_placeholder"),
                                                 lines=2, scale=5, elem_id="eds-chat-input"), "placeholder")
        send = ui.reg("chat.send", gr.Button(ui.t("chat.send"), variant="primary", scale=1, elem_id="eds-chat-send"),
                      "value")
        stop = ui.reg("chat.stop", gr.Button(ui.t("chat.stop"), variant="stop", scale=0, min_width=90,
                                             elem_id="eds-chat-stop"), "value")
    with gr.Row():
        regen = ui.reg("chat.regenerate", gr.Button(ui.t("chat.regenerate"), size="sm", elem_id="eds-chat-regen"),
                       "value")
        clear = ui.reg("chat.clear", gr.Button(ui.t("chat.clear"), size="sm", elem_id="eds-chat-clear"), "value")
        export = ui.reg("chat.export", gr.Button(ui.t("chat.export"), size="sm", elem_id="eds-chat-export"), "value")
        export_file = gr.File(label=None, show_label=False, visible=False, elem_id="eds-chat-export-file", scale=2)

    session = gr.State(ChatSession())
    show_third = gr.State(False)
    timer = gr.Timer(1.5)

    models = [c["model"] for c in cols]
    chats = [c["chat"] for c in cols]
    stats = [c["stats"] for c in cols]
    col_settings = [x for c in cols for x in (c["override"], c["temperature"], c["max_tokens"])]

    # --- model servers ------------------------------------------------------------------------------------------

    def status_updates(*values: str) -> list[Any]:
        out = []
        for v, st in zip(values, servers.statuses([v or "" for v in values]), strict=True):
            out += [_status_text(ui, st),
                    gr.update(interactive=bool(v) and not st.remote and st.status in (NOT_LOADED, FAILED_S, "stopped")),
                    gr.update(interactive=st.loaded)]
        return out

    status_outputs = [x for c in cols for x in (c["status"], c["load"], c["unload"])]
    timer.tick(status_updates, inputs=models, outputs=status_outputs, show_progress="hidden", queue=False)
    for c in cols:
        c["model"].change(status_updates, inputs=models, outputs=status_outputs, show_progress="hidden")

        def do_load(model: str, backend: str):
            try:
                servers.load(model, backend=backend)
            except Exception as e:  # noqa: BLE001 - a bad choice is the user's to fix: say why
                gr.Warning(str(e))
            return status_updates(model)

        def do_unload(model: str):
            try:
                servers.unload(model)
            except Exception as e:  # noqa: BLE001
                gr.Warning(str(e))
            return status_updates(model)

        c["load"].click(do_load, inputs=[c["model"], c["backend"]], outputs=[c["status"], c["load"], c["unload"]])
        c["unload"].click(do_unload, inputs=[c["model"]], outputs=[c["status"], c["load"], c["unload"]])

    def refresh_models(*values: str):
        new = model_choices(ui.workspace)
        return [gr.update(choices=new, value=v if any(v == val for _, val in new) else None) for v in values]

    refresh.click(refresh_models, inputs=models, outputs=models)

    def toggle_third(shown: bool):
        shown = not shown
        return shown, gr.update(visible=shown), gr.update(value=ui.t("chat.remove_column" if shown else
                                                                       "chat.add_column"))

    third.click(toggle_third, inputs=show_third, outputs=[show_third, cols[2]["box"], third])

    # --- chatting -----------------------------------------------------------------------------------------------

    def render(sess: ChatSession) -> list[Any]:
        title = ui.t("chat.reasoning")
        out = [sess.chatbot_messages(i, title) for i in range(N_COLS)]
        for i in range(N_COLS):
            st = sess.last_stats(i)
            out.append(_stats_text(st))
        return out

    def requests_for(shown: bool, temp: float, tp: float, mx: int, sd: Any, *rest: Any) -> list[ColumnRequest]:
        values, settings = rest[:N_COLS], rest[N_COLS:]
        reqs = []
        for i in range(N_COLS if shown else 2):
            if not values[i]:
                continue
            override, ctemp, cmax = settings[3 * i:3 * i + 3]
            s = Sampling(temperature=ctemp if override else temp, top_p=tp,
                         max_new_tokens=int(cmax if override else mx), seed=int(sd) if sd not in (None, "") else None)
            reqs.append(ColumnRequest(i, values[i], SamplingParams.from_sampling(s), label=str(values[i])))
        return reqs

    def stream(sess: ChatSession, reqs: list[ColumnRequest]):
        if not reqs:
            gr.Warning(ui.t("chat.no_model"))
            yield [sess, *render(sess)]
            return
        for _ in respond(sess, servers, reqs):
            yield [sess, *render(sess)]

    def on_send(text: str, sys_prompt: str, sess: ChatSession, shown: bool, temp: float, tp: float, mx: int, sd: Any,
                *rest: Any):
        sess.system_prompt = sys_prompt or ""
        try:
            sess.add_user(text)
        except ValueError:
            gr.Warning(ui.t("chat.empty_message"))
            yield ["", sess, *render(sess)]
            return
        yield ["", sess, *render(sess)]
        for out in stream(sess, requests_for(shown, temp, tp, mx, sd, *rest)):
            yield ["", *out]

    def on_regenerate(sys_prompt: str, sess: ChatSession, shown: bool, temp: float, tp: float, mx: int, sd: Any,
                      *rest: Any):
        sess.system_prompt = sys_prompt or ""
        if not sess.can_regenerate():
            gr.Warning(ui.t("chat.nothing_to_regenerate"))
            yield [sess, *render(sess)]
            return
        sess.regenerate()
        yield from stream(sess, requests_for(shown, temp, tp, mx, sd, *rest))

    common_in = [session, show_third, temperature, top_p, max_tokens, seed, *models, *col_settings]
    view_out = [session, *chats, *stats]
    send_evt = send.click(on_send, inputs=[msg, system, *common_in], outputs=[msg, *view_out],
                          concurrency_limit=32, show_progress="hidden")
    submit_evt = msg.submit(on_send, inputs=[msg, system, *common_in], outputs=[msg, *view_out],
                            concurrency_limit=32, show_progress="hidden")
    regen_evt = regen.click(on_regenerate, inputs=[system, *common_in], outputs=view_out, concurrency_limit=32,
                            show_progress="hidden")
    stop.click(None, cancels=[send_evt, submit_evt, regen_evt])

    def on_clear(sess: ChatSession):
        sess.clear()
        return [sess, *render(sess), gr.update(value=None, visible=False)]

    clear.click(on_clear, inputs=session, outputs=[*view_out, export_file], cancels=[send_evt, submit_evt, regen_evt])

    def on_export(sess: ChatSession, shown: bool, temp: float, tp: float, mx: int, sd: Any, *rest: Any):
        if not sess.turns:
            gr.Warning(ui.t("chat.nothing_to_export"))
            return gr.update(visible=False)
        columns = {r.column: {"model": r.model, "sampling": vars(r.params)}
                   for r in requests_for(shown, temp, tp, mx, sd, *rest)}
        folder = ui.workspace.cache / "chat-exports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"chat-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(sess.export(columns), ensure_ascii=False, indent=1), encoding="utf-8")
        return gr.update(value=str(path), visible=True)

    export.click(on_export, inputs=[session, show_third, temperature, top_p, max_tokens, seed, *models, *col_settings],
                 outputs=export_file)


def _status_text(ui: UIContext, st: Any) -> str:
    if not st.model:
        return ui.t("chat.status_none")
    icon = STATUS_ICONS.get(st.status, "⚪")
    text = ui.t(f"chat.status_{st.status}")
    if st.remote:
        text = ui.t("chat.status_remote")
    msg = f" — {st.message}" if st.message else ""
    return f"{icon} {text}{msg}"


def _stats_text(st: Any) -> str:
    """Footer under a column: ⏳ while streaming, ✓ when finished, ⚠️ when it failed (the reason is in the chat)."""
    if st is None:
        return ""
    mark = "⚠️" if st.error else ("✓" if st.finished else "⏳")
    return f"<small>{mark} {st.describe()}</small>"
