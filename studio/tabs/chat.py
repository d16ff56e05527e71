"""The Chat tab: the arena (teacher | student | a third column on demand, streaming side by side) and evaluation.

Widgets and wiring only: conversation state, rendering, streaming, stats, model servers, their status line and the
export live in core.chat; evaluation in core.eval (see studio/tabs/chat_eval.py). Models run in serve jobs
(Load / Unload), never in this process.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.chat.arena import ColumnRequest, respond
from core.chat.export import export_chat
from core.chat.servers import LOADABLE, STATES, ModelServers, ServerState, server_line
from core.chat.session import ChatSession
from core.config.base import Sampling
from core.errors import BackendError, UserError
from core.llm.base import SamplingParams
from core.pickers import model_choices
from studio.tabs.chat_eval import build_eval
from studio.ui import UIContext

N_COLS = 3


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
        with ui.reg("evaluate.tab", gr.Tab(ui.t("evaluate.tab"), id="evaluate", elem_id="eds-chat-eval")):
            build_eval(ui)


def build_arena(ui: UIContext, servers: ModelServers) -> None:
    w = _arena_layout(ui, servers)
    _wire_servers(ui, servers, w)
    _wire_chat(ui, servers, w)


# ------------------------------------------------------------------------------------------------ layout

def _arena_layout(ui: UIContext, servers: ModelServers) -> dict[str, Any]:
    t = ui.t
    w: dict[str, Any] = {}
    with gr.Row():
        w["system"] = ui.reg("chat.system", gr.Textbox(label=t("chat.system"), lines=1, scale=4,
                                                      placeholder=t("chat.system_placeholder"),
                                                      elem_id="eds-chat-system"), "label", "placeholder")
        w["refresh"] = ui.reg("chat.refresh", gr.Button(t("chat.refresh"), scale=0, min_width=120,
                                                        elem_id="eds-chat-refresh"), "value")
        w["third"] = ui.reg("chat.add_column", gr.Button(t("chat.add_column"), scale=0, min_width=160,
                                                         elem_id="eds-chat-add-column"), "value")
    with ui.reg("chat.sampling", gr.Accordion(t("chat.sampling"), open=False, elem_id="eds-chat-sampling")):
        with gr.Row():
            w["temperature"] = ui.reg("chat.temperature", gr.Slider(0, 2, value=0.7, step=0.05,
                                                                    label=t("chat.temperature")))
            w["top_p"] = ui.reg("chat.top_p", gr.Slider(0.05, 1, value=0.95, step=0.05, label=t("chat.top_p")))
            w["max_tokens"] = ui.reg("chat.max_tokens", gr.Slider(16, 4096, value=512, step=16,
                                                                  label=t("chat.max_tokens")))
            w["seed"] = ui.reg("chat.seed", gr.Number(value=None, precision=0, label=t("chat.seed"),
                                                      elem_id="eds-chat-seed"), "label")
    choices = model_choices(ui.workspace)
    defaults = [_default_model(choices, "teacher"), _default_model(choices, "student"), None]
    with gr.Row(equal_height=False):
        w["cols"] = [_column(ui, servers, i, choices, defaults[i]) for i in range(N_COLS)]
    with gr.Row():
        w["msg"] = ui.reg("chat.message", gr.Textbox(label=t("chat.message"), show_label=False,
                                                     placeholder=t("chat.message_placeholder"), lines=2, scale=5,
                                                     elem_id="eds-chat-input"), "label", "placeholder")
        w["send"] = ui.reg("chat.send", gr.Button(t("chat.send"), variant="primary", scale=1,
                                                  elem_id="eds-chat-send"), "value")
        w["stop"] = ui.reg("chat.stop", gr.Button(t("chat.stop"), variant="stop", scale=0, min_width=90,
                                                  elem_id="eds-chat-stop"), "value")
    with gr.Row():
        w["regen"] = ui.reg("chat.regenerate", gr.Button(t("chat.regenerate"), size="sm",
                                                         elem_id="eds-chat-regen"), "value")
        w["clear"] = ui.reg("chat.clear", gr.Button(t("chat.clear"), size="sm", elem_id="eds-chat-clear"), "value")
        w["export"] = ui.reg("chat.export", gr.Button(t("chat.export"), size="sm", elem_id="eds-chat-export"),
                             "value")
        w["export_file"] = gr.File(label=None, show_label=False, visible=False, elem_id="eds-chat-export-file",
                                   scale=2)
    w["session"] = gr.State(ChatSession())
    w["show_third"] = gr.State(False)
    w["timer"] = gr.Timer(1.5)
    return w


def _column(ui: UIContext, servers: ModelServers, i: int, choices: list[tuple[str, str]],
            default: str | None) -> dict[str, Any]:
    """One arena column: model picker, Load / Unload, server status, chat, stats and its own sampling override."""
    t = ui.t
    c: dict[str, Any] = {}
    with gr.Column(visible=i < 2, elem_id=f"eds-chat-col{i}") as c["box"]:
        key = ("chat.teacher", "chat.student", "chat.third")[i]
        c["title"] = ui.reg(key, gr.Markdown(t(key), elem_classes="eds-chat-title"), "value")
        c["model"] = ui.reg("chat.model", gr.Dropdown(choices=choices, value=default, label=t("chat.model"),
                                                      elem_id=f"eds-chat-model{i}"))
        ui.shared[f"chat.model{i}"] = c["model"]  # the guided flow fills teacher | student here
        with gr.Row():
            c["load"] = ui.reg("chat.load", gr.Button(t("chat.load"), size="sm", variant="primary",
                                                      elem_id=f"eds-chat-load{i}"), "value")
            c["unload"] = ui.reg("chat.unload", gr.Button(t("chat.unload"), size="sm",
                                                          elem_id=f"eds-chat-unload{i}"), "value")
        c["status"] = gr.Markdown(_server_text(ui, servers.status(default or "")), elem_id=f"eds-chat-status{i}")
        c["chat"] = gr.Chatbot(height=440, elem_id=f"eds-chat-bot{i}", show_label=False, buttons=["copy", "copy_all"],
                               latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                                 {"left": "$", "right": "$", "display": False}])
        c["stats"] = gr.Markdown("", elem_id=f"eds-chat-stats{i}")
        with ui.reg("chat.column_settings", gr.Accordion(t("chat.column_settings"), open=False)):
            c["override"] = ui.reg("chat.override", gr.Checkbox(False, label=t("chat.override")))
            c["temperature"] = ui.reg("chat.temperature", gr.Slider(0, 2, value=0.7, step=0.05,
                                                                    label=t("chat.temperature")))
            c["max_tokens"] = ui.reg("chat.max_tokens", gr.Slider(16, 4096, value=512, step=16,
                                                                  label=t("chat.max_tokens")))
            c["backend"] = ui.reg("chat.backend", gr.Radio(["transformers", "vllm"], value="transformers",
                                                           label=t("chat.backend"), info=t("chat.backend_info")),
                                  "label", "info")
    return c


# ------------------------------------------------------------------------------------------------ model servers

def _wire_servers(ui: UIContext, servers: ModelServers, w: dict[str, Any]) -> None:
    cols = w["cols"]
    models = [c["model"] for c in cols]

    def status_updates(*values: str) -> list[Any]:
        out = []
        for v, st in zip(values, servers.statuses([v or "" for v in values]), strict=True):
            out += [_server_text(ui, st), gr.update(interactive=bool(v) and not st.remote and st.status in LOADABLE),
                    gr.update(interactive=st.loaded)]
        return out

    status_outputs = [x for c in cols for x in (c["status"], c["load"], c["unload"])]
    w["timer"].tick(status_updates, inputs=models, outputs=status_outputs, show_progress="hidden", queue=False)
    ui.on_language(status_updates, models, status_outputs)

    def do_load(model: str, backend: str):
        try:
            servers.load(model, backend=backend)
        except (UserError, BackendError) as e:  # no model, an endpoint, an unknown model or folder: say why
            gr.Warning(ui.error_text(e))
        return status_updates(model)

    def do_unload(model: str):
        try:
            servers.unload(model)
        except UserError as e:  # the job ended or vanished meanwhile
            gr.Warning(ui.error_text(e))
        return status_updates(model)

    for c in cols:
        c["model"].change(status_updates, inputs=models, outputs=status_outputs, show_progress="hidden")
        mine = [c["status"], c["load"], c["unload"]]
        c["load"].click(do_load, inputs=[c["model"], c["backend"]], outputs=mine)
        c["unload"].click(do_unload, inputs=[c["model"]], outputs=mine)

    def refresh_models(*values: str):
        new = model_choices(ui.workspace)
        return [gr.update(choices=new, value=v if any(v == val for _, val in new) else None) for v in values]

    w["refresh"].click(refresh_models, inputs=models, outputs=models)

    def toggle_third(shown: bool):
        shown = not shown
        label = ui.t("chat.remove_column" if shown else "chat.add_column")
        return shown, gr.update(visible=shown), gr.update(value=label)

    w["third"].click(toggle_third, inputs=w["show_third"], outputs=[w["show_third"], cols[2]["box"], w["third"]])


# ------------------------------------------------------------------------------------------------ chatting

def _requests(shown: bool, temp: float, tp: float, mx: int, sd: Any, *rest: Any) -> list[ColumnRequest]:
    """One request per shown column with a model: the shared sampling, or the column's own where it overrides."""
    values, settings = rest[:N_COLS], rest[N_COLS:]
    reqs = []
    for i in range(N_COLS if shown else 2):
        if not values[i]:
            continue
        override, ctemp, cmax = settings[3 * i:3 * i + 3]
        s = Sampling(temperature=ctemp if override else temp, top_p=tp, max_new_tokens=int(cmax if override else mx),
                     seed=int(sd) if sd not in (None, "") else None)
        reqs.append(ColumnRequest(i, values[i], SamplingParams.from_sampling(s), label=str(values[i])))
    return reqs


def _wire_chat(ui: UIContext, servers: ModelServers, w: dict[str, Any]) -> None:
    cols = w["cols"]

    def render(sess: ChatSession) -> list[Any]:
        title = ui.t("chat.reasoning")
        return ([sess.chatbot_messages(i, title) for i in range(N_COLS)]
                + [_stats_text(sess.last_stats(i)) for i in range(N_COLS)])

    def stream(sess: ChatSession, reqs: list[ColumnRequest]):
        if not reqs:
            gr.Warning(ui.t("chat.no_model"))
            yield [sess, *render(sess)]
            return
        for _ in respond(sess, servers, reqs):
            yield [sess, *render(sess)]

    def on_send(text: str, sys_prompt: str, sess: ChatSession, *settings: Any):
        sess.system_prompt = sys_prompt or ""
        try:
            sess.add_user(text)
        except ValueError:
            gr.Warning(ui.t("chat.empty_message"))
            yield ["", sess, *render(sess)]
            return
        yield ["", sess, *render(sess)]
        for out in stream(sess, _requests(*settings)):
            yield ["", *out]

    def on_regenerate(sys_prompt: str, sess: ChatSession, *settings: Any):
        sess.system_prompt = sys_prompt or ""
        if not sess.can_regenerate():
            gr.Warning(ui.t("chat.nothing_to_regenerate"))
            yield [sess, *render(sess)]
            return
        sess.regenerate()
        yield from stream(sess, _requests(*settings))

    col_settings = [x for c in cols for x in (c["override"], c["temperature"], c["max_tokens"])]
    settings = [w["show_third"], w["temperature"], w["top_p"], w["max_tokens"], w["seed"],
                *[c["model"] for c in cols], *col_settings]
    view_out = [w["session"], *[c["chat"] for c in cols], *[c["stats"] for c in cols]]
    send_in = [w["msg"], w["system"], w["session"], *settings]
    events = [
        w["send"].click(on_send, inputs=send_in, outputs=[w["msg"], *view_out], concurrency_limit=32,
                        show_progress="hidden"),
        w["msg"].submit(on_send, inputs=send_in, outputs=[w["msg"], *view_out], concurrency_limit=32,
                        show_progress="hidden"),
        w["regen"].click(on_regenerate, inputs=[w["system"], w["session"], *settings], outputs=view_out,
                         concurrency_limit=32, show_progress="hidden"),
    ]
    w["stop"].click(None, cancels=events)

    def on_clear(sess: ChatSession):
        sess.clear()
        return [sess, *render(sess), gr.update(value=None, visible=False)]

    w["clear"].click(on_clear, inputs=w["session"], outputs=[*view_out, w["export_file"]], cancels=events)

    def on_export(sess: ChatSession, *settings: Any):
        try:
            path = export_chat(ui.workspace, sess, _requests(*settings))
        except UserError:  # NothingToExport
            gr.Warning(ui.t("chat.nothing_to_export"))
            return gr.update(visible=False)
        return gr.update(value=str(path), visible=True)

    w["export"].click(on_export, inputs=[w["session"], *settings], outputs=w["export_file"])


# ------------------------------------------------------------------------------------------------ rendering

def _server_text(ui: UIContext, st: ServerState) -> str:
    """A column's server status in the page's language (core.chat.servers.server_line renders it)."""
    words = {s: ui.t(f"chat.status_{s}") for s in STATES}
    return server_line(st, {**words, "none": ui.t("chat.status_none"), "remote": ui.t("chat.status_remote")})


def _stats_text(st: Any) -> str:
    """Footer under a column: ⏳ while streaming, ✓ when finished, ⚠️ when it failed (the reason is in the chat)."""
    if st is None:
        return ""
    mark = "⚠️" if st.error else ("✓" if st.finished else "⏳")
    return f"<small>{mark} {st.describe()}</small>"
