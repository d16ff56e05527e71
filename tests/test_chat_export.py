"""The arena's pieces that need no model: exporting a conversation to a file, and a column's server status line."""

from __future__ import annotations

import json

import pytest

from core.chat.arena import ColumnRequest
from core.chat.export import NothingToExport, export_chat
from core.chat.servers import FAILED_S, NOT_LOADED, READY, ServerError, ServerState, server_line
from core.chat.session import ChatSession
from core.errors import UserError
from core.llm.base import SamplingParams


def test_export_chat_writes_the_conversation_inside_the_workspace(workspace):
    sess = ChatSession()
    with pytest.raises(NothingToExport):
        export_chat(workspace, sess)
    sess.add_user("hello")
    params = SamplingParams(temperature=0.0, max_new_tokens=8)
    path = export_chat(workspace, sess, [ColumnRequest(0, "tiny-teacher", params)])
    assert path.is_relative_to(workspace.cache) and path.suffix == ".json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["turns"][0]["user"] == "hello"
    assert data["columns"]["0"]["model"] == "tiny-teacher" and data["columns"]["0"]["sampling"]["max_new_tokens"] == 8


def test_server_line_renders_every_state_in_the_readers_words():
    words = {READY: "就绪", "none": "⚪ 未选择模型", "remote": "远程服务，已就绪"}
    assert server_line(ServerState(model="", status=NOT_LOADED), words) == "⚪ 未选择模型"
    assert server_line(ServerState(model="m", status=READY, message="cpu"), words) == "🟢 就绪 — cpu"
    assert server_line(ServerState(model="endpoint:x", status=READY, remote=True), words) == "🟢 远程服务，已就绪"
    assert server_line(ServerState(model="m", status=FAILED_S, message="no GPU")) == "🔴 failed — no GPU"


def test_loading_nothing_or_an_endpoint_is_a_user_error(workspace):
    from core.chat.servers import ModelServers

    servers = ModelServers(jobs=None, workspace=workspace)
    for choice in ("", "endpoint:remote"):
        with pytest.raises(ServerError) as e:
            servers.load(choice)
        assert isinstance(e.value, UserError)
