"""`train_onpolicy` job: on-policy KD — the student writes answers, the teacher scores them token by token.

Delegates to TRL 1.16: `trl.experimental.gkd.GKDTrainer` (default; `lmbda` = share of batches where the student
generates, the rest use the dataset's answers; `beta` picks forward KL (0) … JSD … reverse KL (1)) or
`trl.DistillationTrainer` (fully on-policy, chunked loss, optional vLLM generation). Teacher and student live in the
same job (the teacher frozen, in bf16 on GPUs), so they must share the tokenizer: checked before anything loads.
"""

from __future__ import annotations

from core.config.train import OnPolicyKdJob
from core.jobs.context import JobContext
from core.train import common
from core.train.dataset import Example, load_conversations, split_examples


def _rows(ctx: JobContext, config: OnPolicyKdJob) -> tuple[list[dict], list[dict], list[str]]:
    """Dataset rows as {"id", "messages", "prompt"} for TRL (the prompt = the conversation before the last answer)."""
    notes: list[str] = []
    convs, skipped = load_conversations(ctx.workspace, config.dataset)
    if skipped:
        notes.append(f"{len(skipped)} row(s) without an answer skipped (first: {skipped[0]})")

    def rec(rid: str, msgs: list[dict]) -> dict:
        last = max(i for i, m in enumerate(msgs) if m.get("role") == "assistant")
        return {"id": rid, "messages": msgs[: last + 1], "prompt": msgs[:last]}

    if config.eval_dataset:
        train = [rec(r, m) for r, m in convs]
        held = [rec(r, m) for r, m in load_conversations(ctx.workspace, config.eval_dataset)[0]]
    else:
        tr, ev = split_examples([Example(r, [], []) for r, _ in convs], config.eval_split, config.seed)
        by_id = dict(convs)
        train = [rec(e.id, by_id[e.id]) for e in tr]
        held = [rec(e.id, by_id[e.id]) for e in ev]
    return train, held, notes


def build(config: OnPolicyKdJob, ctx: JobContext):
    from datasets import Dataset

    from core.models.registry import check_logit_kd
    from core.train.callbacks import JobProgressCallback

    student_path = common.resolve_model_path(ctx, config.student)
    teacher_path = common.resolve_model_path(ctx, config.teacher)
    verdict = check_logit_kd(teacher_path, student_path)
    if not verdict.ok:
        raise common.TrainSetupError(f"teacher '{config.teacher}' and student '{config.student}': {verdict.message}")
    template = common.read_template(ctx, config.template)
    tokenizer = common.load_tokenizer(student_path, template)
    train, held, notes = _rows(ctx, config)
    for note in notes:
        ctx.event(note)
    cpu = common.use_cpu(ctx)
    student = common.load_model(student_path, config, cpu)
    teacher = common.load_model(teacher_path, config, cpu, trainable=False)
    base = common.trainer_args(config, ctx, bool(held), remove_unused_columns=False)
    callback = JobProgressCallback(ctx)
    if config.trainer == "gkd":
        from trl.experimental.gkd import GKDConfig, GKDTrainer

        args = GKDConfig(**base, lmbda=config.lmbda, beta=config.beta, temperature=config.temperature,
                         max_new_tokens=config.max_new_tokens, max_length=config.max_length)
        cols = ["id", "messages"]
        trainer_cls = GKDTrainer
    else:
        from trl import DistillationConfig, DistillationTrainer

        base.pop("prediction_loss_only", None)
        args = DistillationConfig(**base, beta=config.beta, temperature=config.temperature,
                                  max_completion_length=config.max_new_tokens)
        cols = ["id", "prompt"]
        trainer_cls = DistillationTrainer

    def ds(rows: list[dict]):
        return Dataset.from_list([{c: r[c] for c in cols} for r in rows])

    trainer = trainer_cls(
        model=student, teacher_model=teacher, args=args, train_dataset=ds(train),
        eval_dataset=ds(held) if held else None, processing_class=tokenizer,
        peft_config=common.lora_config(config), callbacks=[callback],
    )
    ctx.event(f"on-policy KD ({config.trainer}) on {len(train)} prompts ({len(held)} held out); {verdict.message}")
    return trainer, tokenizer, callback, student_path


def run(config: OnPolicyKdJob, ctx: JobContext) -> None:
    trainer, tokenizer, callback, student_path = build(config, ctx)
    common.train_and_publish(
        trainer, ctx, config, tokenizer, callback, "onpolicy", student_path,
        extra_provenance={"teacher": config.teacher, "trainer": config.trainer},
    )
