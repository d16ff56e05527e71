"""GRPO / RLOO jobs on tiny models: a rule reward on a toy task rises over a few steps; the reward functions on their
own (math-verify against a reference, format tags, length bounds, a judge through a backend, a trained reward model);
setup errors before any model loads."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from core.config.train import GrpoJob  # noqa: E402
from core.workspace import Workspace  # noqa: E402
from tests.test_train import make_ctx, metrics  # noqa: E402

pytestmark = pytest.mark.timeout(600)

TOPICS = ("the sea", "a cat", "school", "the sun", "music", "a city", "water", "a tree")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("grpo") / "ws")
    rows = [{"id": f"q{i}", "instruction": f"Say one word about {t}.", "answer": str(i)}
            for i, t in enumerate(TOPICS * 2)]
    (ws.datasets / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return ws


def _mean(records: list[dict], key: str) -> float:
    return sum(r[key] for r in records) / len(records)


def test_grpo_with_a_length_reward_raises_mean_reward(ws, tiny_models):
    """Toy task: answers of at most 3 tokens earn 1, longer ones 3/length. The random tiny student rambles to the
    12-token limit; a few GRPO steps teach it to end its turn early."""
    from core.train import grpo

    ctx = make_ctx(ws, "grpo-len")
    grpo.run(GrpoJob(student=str(tiny_models.student), dataset="prompts", output="student-grpo",
                     reward_funcs=["length"], min_length=0, max_length_tokens=3, max_completion_length=12,
                     num_generations=8, per_device_train_batch_size=16, gradient_accumulation_steps=1,
                     learning_rate=5e-3, lr_scheduler_type="constant", warmup_ratio=0.0, max_steps=36,
                     save_steps=100, logging_steps=1, beta=0.001), ctx)
    m = [r for r in metrics(ctx) if "reward" in r]
    assert len(m) == 36 and all("rewards/length/mean" in r and "kl" in r for r in m)  # per function, KL (β > 0)
    assert m[-1]["kl"] > 0
    first, last = _mean(m[:5], "reward"), _mean(m[-5:], "reward")
    assert last > first + 0.1, [round(r["reward"], 3) for r in m]
    assert (ws.models / "student-grpo" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------------------ reward functions


def _chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_rule_rewards_parse_and_never_run_model_output():
    from core.train.rewards import REFERENCE_COLUMN, FormatReward, LengthReward, MathVerifyReward

    prompts = [[{"role": "user", "content": "What is half of 1?"}]] * 4
    done = [_chat("So it is \\boxed{\\frac{1}{2}}"), _chat("The answer is 0.5"), _chat("It is 2."),
            _chat("__import__('os').system('touch /tmp/pwned') or 0.5")]
    got = MathVerifyReward()(prompts, done, None, **{REFERENCE_COLUMN: ["1/2", "1/2", "1/2", ""]})
    assert got == [1.0, 1.0, 0.0, None]  # no reference: not scored (None), and nothing was executed
    fmt = FormatReward("think")
    assert fmt(prompts[:4], [_chat("<think>add them</think> 5"), _chat("5"), _chat("<think></think> 5"),
                             _chat("<think>a</think>")]) == [1.0, 0.0, 0.0, 0.0]
    length = LengthReward(2, 4)
    assert length(prompts[:4], done, [[1], [1, 2], [1, 2, 3, 4], [1] * 8]) == [0.5, 1.0, 1.0, 0.5]


def test_judge_reward_through_a_backend_scales_scores_and_skips_failures():
    from core.llm.base import Completion
    from core.train.rewards import JUDGE_TEMPLATE, REFERENCE_COLUMN, JudgeReward

    class FakeJudge:
        def __init__(self):
            self.seen: list[str] = []

        def chat(self, convs, params, top_logprobs=0):
            self.seen += [c[0]["content"] for c in convs]
            return [Completion("fine work <score>9</score>"), Completion("meh, 3 of 9 <score>3</score>"),
                    Completion("", error="timeout")]

    judge = FakeJudge()
    got = JudgeReward(judge, JUDGE_TEMPLATE)([[{"role": "user", "content": "2+2?"}]] * 3,
                                            [_chat("4 {not a field}"), _chat("5"), _chat("4")],
                                            None, **{REFERENCE_COLUMN: ["4", "4", ""]})
    assert got == [1.0, pytest.approx(3 / 9), None]
    assert "4 {not a field}" in judge.seen[0] and "[Reference answer]\n4" in judge.seen[0]
    assert "[Reference answer]" not in judge.seen[2]


def test_reward_model_reward_scores_with_a_one_output_model(tiny_models, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from core.train.rewards import RewardModelReward, RewardSetupError

    rm = AutoModelForSequenceClassification.from_pretrained(str(tiny_models.student), num_labels=1)
    rm.save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(str(tiny_models.student)).save_pretrained(tmp_path / "rm")
    score = RewardModelReward(tmp_path / "rm", max_length=64, cpu=True)
    got = score([[{"role": "user", "content": "hi"}]] * 2, [_chat("hello there"), _chat("no")])
    assert len(got) == 2 and got[0] != got[1]
    two = AutoModelForSequenceClassification.from_pretrained(str(tiny_models.student), num_labels=2)
    two.save_pretrained(tmp_path / "cls")
    AutoTokenizer.from_pretrained(str(tiny_models.student)).save_pretrained(tmp_path / "cls")
    with pytest.raises(RewardSetupError, match="one"):
        RewardModelReward(tmp_path / "cls", max_length=64, cpu=True)


def test_grpo_setup_errors_name_the_field(ws, tiny_models):
    from pydantic import ValidationError

    from core.train import grpo
    from core.train.common import TrainSetupError

    (ws.datasets / "bare.jsonl").write_text('{"id": "a", "instruction": "Hi."}\n', encoding="utf-8")
    with pytest.raises(TrainSetupError, match="math_verify needs a reference answer"):
        grpo.build(GrpoJob(student=str(tiny_models.student), dataset="bare", reward_funcs=["math_verify"]),
                   make_ctx(ws, "bad-1"))
    with pytest.raises(TrainSetupError, match="use_vllm"):
        grpo.build(GrpoJob(student=str(tiny_models.student), dataset="prompts", use_vllm=True), make_ctx(ws, "bad-2"))
    with pytest.raises(ValidationError, match="multiple of the group size"):
        GrpoJob(student="s", dataset="d", num_generations=3)
    with pytest.raises(ValidationError, match="2 weight"):
        GrpoJob(student="s", dataset="d", reward_funcs=["length"], reward_weights="1, 2")
    with pytest.raises(ValidationError, match="needs a trained reward model"):
        GrpoJob(student="s", dataset="d", reward_funcs=["reward_model"])


# ------------------------------------------------------------------------------------------------ 1.x configs


def test_v1_rl_configs_run_reward_then_grpo_and_ppo_as_rloo(tmp_path, tiny_models):
    """rl_reward_local trains a reward model on 1.x pairs; rl_grpo and rl_ppo (as RLOO, said in the job log) use it
    through `models.reward` — each imported from its 1.x JSON and run a few steps."""
    from core.config.io import load_config_file
    from core.train import grpo, reward

    ws = Workspace.open(tmp_path / "ws")
    pairs = [{"prompt": f"Add {i} and 1.", "chosen": f"{i} plus 1 is {i + 1}.", "rejected": "No idea."}
             for i in range(8)]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    (tmp_path / "instructions.json").write_text(json.dumps([{"instruction": f"Add {i} and 2."} for i in range(4)]))
    train = {"max_steps": 2, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
             "learning_rate": 1e-4, "logging_steps": 1, "output_dir": "./rm-out"}
    rm_cfg = {"job_type": "rl_reward_local", "models": {"student": str(tiny_models.student)},
              "dataset": {"labeled_path": "pairs.json"}, "training": train}
    (tmp_path / "rm.json").write_text(json.dumps(rm_cfg))
    config, _ = load_config_file(tmp_path / "rm.json")
    reward.run(config, make_ctx(ws, "v1-rm"))
    assert (ws.models / "rm-out" / "eds_model.json").is_file()
    for job_type, trainer in (("rl_grpo", "grpo"), ("rl_ppo", "rloo")):
        cfg = {"job_type": job_type, "dataset": {"instruction_path": "instructions.json"},
               "models": {"student": str(tiny_models.student), "reward": str(ws.models / "rm-out")},
               "training": {**train, "output_dir": f"./{job_type}-out"}}
        (tmp_path / f"{job_type}.json").write_text(json.dumps(cfg))
        config, notes = load_config_file(tmp_path / f"{job_type}.json")
        assert config.kind == "train_grpo" and config.trainer == trainer and config.reward_funcs == ["reward_model"]
        ctx = make_ctx(ws, f"v1-{job_type}")
        grpo.run(config.model_copy(update={"max_completion_length": 8}), ctx)  # short answers: a fast test
        m = metrics(ctx)
        assert any("rewards/reward_model/mean" in r for r in m)
        assert (ws.models / f"{job_type}-out" / "model.safetensors").is_file()
        if trainer == "rloo":
            assert any("RLOO" in n for n in notes)
            assert any("rl_ppo runs as this" in r.get("event", "") for r in m)
