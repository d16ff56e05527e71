"""A trained reward model as an evaluation metric and in the pickers: the evaluate job scores the model's answers and
the reference's with it (per row and as a mean), ranks answers the way the reward model learned to; reward heads are
left out of the chat / generation / training pickers and offered where a reward model is wanted."""

from __future__ import annotations

import json
import math

import pytest

from core.config.base import BackendSpec, EndpointSpec
from core.config.train import EvaluateJob
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.timeout(300)


def _remote(srv: FakeOpenAIServer) -> BackendSpec:
    return BackendSpec(type="openai", endpoint=EndpointSpec(base_url=srv.base_url, max_retries=1, timeout_s=30))


def _sum_of(messages: list[dict]) -> str:
    """The 'teacher-like' answer the reward model was trained to prefer: 'a plus b is a+b.'"""
    q = [m for m in messages if m["role"] == "user"][-1]["content"]
    a, b = (int(x) for x in q.removeprefix("Add ").removesuffix(".").split(" and "))
    return f"{a} plus {b} is {a + b}."


@pytest.fixture(scope="module")
def rm_ws(tmp_path_factory, tiny_models):
    """A workspace with a reward model trained (as test_train_reward does) on 'sum' over 'dodge' pairs."""
    from core.config.train import RewardJob
    from core.train import reward
    from core.workspace import Workspace
    from tests.test_train import make_ctx
    from tests.test_train_dpo import SMALL, _pairs

    ws = Workspace.open(tmp_path_factory.mktemp("eval-rm") / "ws")
    (ws.datasets / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _pairs(64, 1)), encoding="utf-8")
    reward.run(RewardJob(student=str(tiny_models.student), dataset="prefs", output="rm", max_steps=12, save_steps=100,
                         learning_rate=1e-3, **SMALL), make_ctx(ws, "rm"))
    held = [{"id": f"h{i}", "instruction": r["instruction"]} for i, r in enumerate(_pairs(10, 7))]
    (ws.datasets / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held), encoding="utf-8")
    return ws


def test_reward_model_metric_ranks_the_better_answers_higher(rm_ws):
    from core.eval import results
    from core.eval.job import run
    from core.eval.plots import summary_figure
    from tests.test_train import make_ctx

    with FakeOpenAIServer(_sum_of) as good, FakeOpenAIServer(lambda msgs: "I do not know.") as dodge:
        cfg = EvaluateJob(model=_remote(good), reference=_remote(dodge), dataset="held", metrics=["reward_model"],
                          reward_model="rm")
        ctx = make_ctx(rm_ws, "eval-rm")
        run(cfg, ctx)
        assert len(good.answered()) == 10 and len(dodge.answered()) == 10
    ev = results.load(ctx.output_dir)
    s = ev.results["summary"]
    rows = ev.rows
    mine, ref = [r["model_reward"] for r in rows], [r["reference_reward"] for r in rows]
    assert len(mine) == len(ref) == 10 and all(math.isfinite(v) for v in mine + ref)
    assert s["model"]["reward_model"] == pytest.approx(sum(mine) / 10) and s["model"]["reward_model_n"] == 10
    assert s["reference"]["reward_model"] == pytest.approx(sum(ref) / 10)
    assert s["model"]["reward_model"] > s["reference"]["reward_model"]
    assert sum(a > b for a, b in zip(mine, ref, strict=True)) >= 8  # per row, the sum beats the dodge
    assert ev.results["models"]["reward_model"] == "rm" and ev.results["complete"]
    headers, table = results.summary_table(ev.results)
    assert "reward_model" in headers and len(table) == 2
    dh, _ = results.drilldown(rows)
    assert "model_reward" in dh and "reference_reward" in dh
    fig = summary_figure(ev.results)
    assert any("reward_model" in (a.text or "") for a in fig.layout.annotations)

    # resumed: nothing asked or scored again
    with FakeOpenAIServer(_sum_of) as good, FakeOpenAIServer(lambda msgs: "I do not know.") as dodge:
        run(cfg.model_copy(update={"model": _remote(good), "reference": _remote(dodge)}), ctx)
        assert not good.answered() and not dodge.answered()
    assert results.load(ctx.output_dir).results["summary"] == s


def test_reward_heads_in_the_pickers_and_forms(rm_ws, tiny_models):
    import shutil

    from core.eval.form import FORM as EVAL_FORM
    from core.pickers import local_model_names, model_choices, reward_model_choices
    from core.train.form import FORM as TRAIN_FORM

    shutil.copytree(tiny_models.student, rm_ws.models / "chat-model", dirs_exist_ok=True)
    values = [v for _, v in model_choices(rm_ws)]
    assert "chat-model" in values and "rm" not in values and "rm" not in local_model_names(rm_ws)
    assert reward_model_choices(rm_ws) == [("rm", "rm")]
    by = {f.name: f for f in EVAL_FORM.fields}
    assert by["reward_model"].extra["choices_of"] is reward_model_choices
    assert {f.name: f for f in TRAIN_FORM.fields}["reward_model"].extra["choices_of"] is reward_model_choices

    job = EVAL_FORM.build_job(rm_ws, {**EVAL_FORM.defaults(), "model": "chat-model", "dataset": "held",
                                      "metrics": ["reward_model"], "reward_model": "rm"})
    assert job.reward_model == "rm" and job.metrics == ["reward_model"]
    assert EVAL_FORM.values_of(job, rm_ws)["reward_model"] == "rm"
    with pytest.raises(ValueError, match="reward_model"):
        EVAL_FORM.build_job(rm_ws, {**EVAL_FORM.defaults(), "model": "chat-model", "dataset": "held",
                                    "metrics": ["reward_model"], "reward_model": ""})


def test_cli_eval_run_takes_the_reward_model(workspace, capsys):
    """`easydistill eval run --metrics reward_model` needs --reward-model (refused before any job is submitted)."""
    from core.cli.main import main

    argv = ["--workspace", str(workspace.root), "eval", "run", "--model", "m", "--dataset", "d", "--metrics",
            "reward_model", "--detach"]
    assert main(argv) == 2
    assert "reward_model" in capsys.readouterr().err


def test_model_head_from_provenance_or_architecture(tmp_path):
    """A train_reward output says head "reward" in eds_model.json; a one-label sequence classifier from elsewhere is a
    reward model too; more labels make a classifier (offered nowhere); a causal LM has no head."""
    from core.models.registry import inspect_model_dir

    def folder(name: str, config: dict, provenance: dict | None = None):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps(config))
        if provenance is not None:
            (d / "eds_model.json").write_text(json.dumps(provenance))
        return inspect_model_dir(d, name, "workspace").head

    cls = "Qwen2ForSequenceClassification"
    assert folder("ours", {"architectures": [cls]}, {"method": "reward", "head": "reward"}) == "reward"
    assert folder("hub-rm", {"architectures": [cls], "id2label": {"0": "LABEL_0"}}) == "reward"
    assert folder("two", {"architectures": [cls], "id2label": {"0": "a", "1": "b"}}) == "classifier"
    assert folder("lm", {"architectures": ["Qwen2ForCausalLM"]}, {"method": "dpo"}) is None
