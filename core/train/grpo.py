"""`train_grpo` job: RL from rewards with TRL's GRPOTrainer (or RLOOTrainer) — the student samples `num_generations`
answers per prompt, the rewards (core.train.rewards, weighted) rank them within the group, the policy moves towards
the better ones, optionally held near the reference by a KL term (`beta`).

Generation runs through transformers (`model.generate`, CPU or GPU) unless `use_vllm` asks for TRL's colocated vLLM
engine (a GPU with vllm installed; refused up front otherwise). TRL logs reward (total and `rewards/<name>/mean` per
function), kl (when beta > 0), completion lengths and clip ratios; the job's metrics carry them as they are.

`trainer: rloo` is what EasyDistill 1.x's `rl_ppo` imports as: TRL 1.16 has no PPO trainer, and RLOO (REINFORCE with
a leave-one-out baseline over the same group of samples) is the closest on-policy method it keeps.
"""

from __future__ import annotations

from typing import Any

from core.config.train import GrpoJob
from core.data.errors import DataError
from core.jobs.context import JobContext
from core.train import common
from core.train.rewards import REFERENCE_COLUMN, build_rewards, close_rewards


def prompts(ctx: JobContext, config: GrpoJob) -> list[dict[str, Any]]:
    """{id, prompt (chat messages without the answer), reference_answer} per dataset row."""
    from core.data.rows import to_messages
    from core.data.store import load_rows
    from core.eval.answers import gold_answer

    rows, errors = load_rows(ctx.workspace, config.dataset, confined=False)
    if errors:
        raise DataError(f"{config.dataset}: {len(errors)} row(s) cannot be read; fix or re-import the dataset", errors)
    out = []
    for row in rows:
        msgs = to_messages(row, include_output=False)
        if not any(m.get("role") == "user" and str(m.get("content") or "").strip() for m in msgs):
            continue
        out.append({"id": str(row.get("id")), "prompt": msgs, REFERENCE_COLUMN: gold_answer(row, config.answer_field)
                    or ""})
    if not out:
        raise DataError(f"{config.dataset}: no row has a prompt (instruction or a user turn)")
    return out


def _check_setup(config: GrpoJob, rows: list[dict], cpu: bool) -> list[str]:
    """Refuse what cannot work before any model loads; notes for what is ignored."""
    notes = []
    if config.use_vllm:
        import importlib.util

        if cpu or importlib.util.find_spec("vllm") is None:
            raise common.TrainSetupError("use_vllm: needs a GPU and the vllm package in this environment; untick it "
                                         "to generate with transformers")
    if "math_verify" in config.reward_funcs and not any(r[REFERENCE_COLUMN] for r in rows):
        column = config.answer_field or "answer, gold, reference, solution or output"
        raise common.TrainSetupError(
            f"reward_funcs: math_verify needs a reference answer column ({column}); the dataset has none")
    if config.eval_dataset or config.eval_split:
        notes.append("eval_split / eval_dataset: not used by RL training (the reward curves are its measure)")
    return notes


def build(config: GrpoJob, ctx: JobContext):
    """(trainer, tokenizer, callback, student path, reward functions)."""
    from datasets import Dataset

    from core.train.callbacks import JobProgressCallback

    cpu = common.use_cpu(ctx)
    rows = prompts(ctx, config)
    for note in _check_setup(config, rows, cpu):
        ctx.event(note)
    student_path = common.resolve_model_path(ctx, config.student)
    template = common.read_template(ctx, config.template)
    tokenizer = common.load_tokenizer(student_path, template)
    funcs, weights = build_rewards(config, ctx, cpu)
    model = common.load_model(student_path, config, cpu)
    base = common.trainer_args(config, ctx, False)
    base.pop("prediction_loss_only", None)
    base.pop("include_num_input_tokens_seen", None)  # RL batches carry no input_ids; TRL counts tokens itself
    rl: dict[str, Any] = {
        "num_generations": config.num_generations, "max_completion_length": config.max_completion_length,
        "temperature": config.temperature, "beta": config.beta, "reward_weights": weights,
        "use_vllm": config.use_vllm, "log_completions": False,
    }
    if config.use_vllm:
        rl["vllm_mode"] = "colocate"
    if config.trainer == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        args, trainer_cls = GRPOConfig(**base, **rl, loss_type=config.loss_type), GRPOTrainer
    else:
        from trl import RLOOConfig, RLOOTrainer

        args, trainer_cls = RLOOConfig(**base, **rl), RLOOTrainer
    callback = JobProgressCallback(ctx)
    trainer = trainer_cls(
        model=model, reward_funcs=funcs, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=common.lora_config(config), callbacks=[callback],
    )
    if config.trainer == "rloo":
        ctx.event("RLOO (TRL RLOOTrainer): REINFORCE with a leave-one-out baseline over each prompt's group of "
                  "samples. EasyDistill 1.x's rl_ppo runs as this: TRL 1.16 has no PPO trainer any more")
    parts = " + ".join(f"{w:g}·{f.__name__}" for f, w in zip(funcs, weights, strict=True))
    ctx.event(f"{config.trainer.upper()} on {len(rows)} prompts, {config.num_generations} answers each, reward = "
              f"{parts}, β={config.beta}, generation: {'vLLM' if config.use_vllm else 'transformers'}, "
              f"{'LoRA r=' + str(config.lora.r) if config.lora else 'full fine-tuning'}")
    return trainer, tokenizer, callback, student_path, funcs


def run(config: GrpoJob, ctx: JobContext) -> None:
    trainer, tokenizer, callback, student_path, funcs = build(config, ctx)
    try:
        common.train_and_publish(
            trainer, ctx, config, tokenizer, callback, config.trainer, student_path,
            extra_provenance={"reward_funcs": list(config.reward_funcs), "beta": config.beta},
        )
    finally:
        close_rewards(funcs)
