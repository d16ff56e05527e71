"""The model registry: facts without torch, name resolution with clear errors, KD compatibility, endpoints, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from core.llm.base import BackendError
from core.models import registry


@pytest.fixture
def ws_with_models(workspace, tiny_models):
    shutil.copytree(tiny_models.teacher, workspace.models / "teacher")
    shutil.copytree(tiny_models.student, workspace.models / "student")
    (workspace.models / "broken").mkdir()
    (workspace.models / "broken" / "notes.txt").write_text("not a model")
    adapter = workspace.models / "my-lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "teacher", "r": 8}))
    return workspace


def test_list_models_reports_facts_from_files(ws_with_models, tiny_models):
    from transformers import AutoModelForCausalLM

    registry.save_endpoint(ws_with_models, registry.EndpointEntry("dashscope", "https://dashscope.example/v1",
                                                                  "qwen-max", "DASHSCOPE_API_KEY"))
    rows = {m.name: m for m in registry.list_models(ws_with_models, extra_paths=[str(tiny_models.student)])}
    t = rows["teacher"]
    model = AutoModelForCausalLM.from_pretrained(tiny_models.teacher)
    assert t.params == model.num_parameters()  # from safetensors headers, tied weights counted once
    assert (t.architecture, t.num_layers, t.vocab_size, t.dtype) == ("Qwen2ForCausalLM", 4, 1024, "float32")
    assert t.chat_template is True and t.tokenizer_size == 1024 and t.error is None
    assert t.disk_bytes > (tiny_models.teacher / "model.safetensors").stat().st_size
    assert rows["student"].num_layers == 2 and rows["student"].params < t.params
    assert rows[str(tiny_models.student)].source == "path"
    assert "no config.json" in rows["broken"].error
    assert rows["my-lora"].is_adapter and "teacher" in rows["my-lora"].architecture
    ep = rows["dashscope"]
    assert (ep.source, ep.base_url, ep.api_key_env) == ("endpoint", "https://dashscope.example/v1", "DASHSCOPE_API_KEY")


def test_listing_does_not_import_torch(ws_with_models):
    code = (
        "import sys; from core.workspace import Workspace; from core.models.registry import list_models; "
        f"rows = list_models(Workspace.open({str(ws_with_models.root)!r})); "
        "assert rows and 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_resolve_model_names_paths_and_errors(ws_with_models, tiny_models, tmp_path):
    ws = ws_with_models
    assert registry.resolve_model("teacher", ws) == ws.models / "teacher"
    assert registry.resolve_model(str(tiny_models.student), ws) == tiny_models.student.resolve()
    with pytest.raises(BackendError, match=r"unknown model 'nope'.*workspace has: .*teacher"):
        registry.resolve_model("nope", ws)
    with pytest.raises(BackendError, match="does not exist"):
        registry.resolve_model(str(tmp_path / "gone"), ws)
    with pytest.raises(BackendError, match="no model given"):
        registry.resolve_model("  ", ws)
    with pytest.raises(BackendError, match="hub could not provide it.*workspace/models"):
        registry.resolve_model("SomeOrg/not-downloaded-model", ws)  # HF_HUB_OFFLINE=1 in tests
    from core.workspace import PathOutsideWorkspace

    with pytest.raises(PathOutsideWorkspace):  # a web visitor cannot point at server folders
        registry.resolve_model(str(tiny_models.student), ws, confine=True)


def test_logit_kd_compatibility(tiny_models, tmp_path):
    ok = registry.check_logit_kd(tiny_models.teacher, tiny_models.student)
    assert ok.ok and "logit KD works" in ok.message

    # a student whose output head is padded (as Qwen pads to a multiple of 64/128): still fine
    from transformers import AutoModelForCausalLM, AutoTokenizer

    padded = tmp_path / "padded"
    m = AutoModelForCausalLM.from_pretrained(tiny_models.student)
    m.resize_token_embeddings(1088)
    m.save_pretrained(padded)
    AutoTokenizer.from_pretrained(tiny_models.student).save_pretrained(padded)
    res = registry.check_logit_kd(tiny_models.teacher, padded)
    assert res.ok and "differ only by padding (1024 vs 1088)" in res.message

    # a tokenizer with two token ids swapped: the logits mean different things -> black-box KD
    swapped = tmp_path / "swapped"
    shutil.copytree(tiny_models.student, swapped)
    tj = json.loads((swapped / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    a, b = "Ġthe", "Ġof"
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (swapped / "tokenizer.json").write_text(json.dumps(tj))
    res = registry.check_logit_kd(tiny_models.teacher, swapped)
    assert not res.ok and "use black-box KD" in res.message and "2 shared tokens have different ids" in res.message

    # same vocabulary, different end-of-turn token
    eos = tmp_path / "eos"
    shutil.copytree(tiny_models.student, eos)
    cfg = json.loads((eos / "tokenizer_config.json").read_text())
    cfg["eos_token"] = "<|endoftext|>"
    (eos / "tokenizer_config.json").write_text(json.dumps(cfg))
    res = registry.check_logit_kd(tiny_models.teacher, eos)
    assert not res.ok and "special tokens differ" in res.message


def test_endpoints_store_only_env_var_names(workspace):
    with pytest.raises(BackendError, match="NAME of the variable"):
        registry.save_endpoint(workspace, registry.EndpointEntry("x", "http://h/v1", None, "sk-abc123-secret"))
    with pytest.raises(BackendError, match="must start with http"):
        registry.save_endpoint(workspace, registry.EndpointEntry("x", "h:8000/v1"))
    registry.save_endpoint(workspace, registry.EndpointEntry("local", "http://127.0.0.1:8000/v1", None, "MY_KEY"))
    registry.save_endpoint(workspace, registry.EndpointEntry("local", "http://127.0.0.1:9000/v1"))  # replaced
    assert [(e.name, e.base_url) for e in registry.load_endpoints(workspace)] == [("local", "http://127.0.0.1:9000/v1")]
    assert registry.remove_endpoint(workspace, "local") and not registry.load_endpoints(workspace)


def test_cli_models_list_and_check(ws_with_models, capsys):
    from core.cli.main import main

    assert main(["--workspace", str(ws_with_models.root), "models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"teacher", "student", "broken"}
    assert main(["--workspace", str(ws_with_models.root), "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "Qwen2ForCausalLM" in out and "ERROR" in out
    assert main(["--workspace", str(ws_with_models.root), "models", "check", "--teacher", "teacher",
                 "--student", "student"]) == 0
    assert "OK: same tokenizer" in capsys.readouterr().out
    assert main(["--workspace", str(ws_with_models.root), "models", "endpoint", "add", "vllm1",
                 "http://127.0.0.1:8000/v1", "--key-env", "VLLM_KEY"]) == 0
    assert registry.load_endpoints(ws_with_models)[0].api_key_env == "VLLM_KEY"
