"""`capture` job: teacher forcing over each row's prompt + answer, storing the teacher's top-k per answer token.

One forward pass per row (no generation), through the backend protocol's `score()`: the transformers backend locally,
or a vLLM / OpenAI-compatible server's prompt log-probs. Each scored answer is placed on the positions of our own
tokenization (core.train.dataset, the same one the KD trainer uses) by matching token ids, and written to the logit
cache under the row's id (version 2: ~43 bytes per token at k = 10, one row index; see core.train.logit_cache).
Resumable: ids already in the cache are skipped. Stop: what was scored is flushed and indexed.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.config.base import BackendSpec
from core.config.data_jobs import CaptureJob
from core.errors import UserError
from core.jobs.context import JobContext
from core.llm.base import ScoredResponse
from core.train.dataset import load_conversations, template_fingerprint, tokenize_conversation, tokenizer_fingerprint
from core.train.logit_cache import CacheMeta, LogitCache, LogitCacheWriter


class CaptureError(UserError, ValueError):
    """A capture that cannot run as configured; the message says what to change."""


def cache_name(config: CaptureJob) -> str:
    return config.output or default_cache_name(config.input, config.teacher.model, config.top_k)


def default_cache_name(dataset: str, teacher_model: str, top_k: int) -> str:
    """<dataset>-<teacher>-k<k>: the cache a capture writes when no name is given (the Training form shows it)."""
    teacher = Path((teacher_model or "teacher").rstrip("/")).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(dataset).stem}-{teacher}-k{top_k}")


def cache_folder(ctx: JobContext, name: str) -> Path:
    """A cache name -> workspace/cache/<name>; a path is the local user's (`Workspace.local`: relative to the
    workspace, never out through a link inside it); a web visitor's was confined when the job was submitted."""
    if "/" in name or name.startswith("."):
        return ctx.workspace.local(name, ctx.workspace.root)
    return ctx.workspace.inside(ctx.workspace.cache / name)


def open_backend(spec: BackendSpec, ctx: JobContext):
    """The teacher through the backend protocol (transformers locally, vLLM managed or remote, any OpenAI server)."""
    from core.llm import make_backend

    return make_backend(spec, workspace=ctx.workspace, devices=ctx.devices, log_dir=ctx.run_dir)


def align(scored: ScoredResponse, ids: list[int], mask: list[int]) -> tuple[int, int]:
    """Where the scored answer sits in our tokenization: (start, count) of matching tokens in the last answer span.

    The backend scores the final assistant turn; we locate it as the last run of assistant tokens and keep the
    longest prefix whose token ids agree (truncation by max_length, or whitespace a template adds, cut the rest).
    """
    end = len(mask)
    while end > 0 and not mask[end - 1]:
        end -= 1
    start = end
    while start > 0 and mask[start - 1]:
        start -= 1
    resp = scored.response_token_ids
    n = 0
    while n < len(resp) and start + n < len(ids) and ids[start + n] == resp[n]:
        n += 1
    return start, n


def store_scored(writer: LogitCacheWriter, vocab: int, rid: str, ids: list[int], mask: list[int],
                 scored: ScoredResponse) -> int:
    """Write a scored row's top-k at the positions of our tokenization; the positions stored (0: none aligned)."""
    start, n = align(scored, ids, mask)
    if n == 0:
        return 0
    pos = scored.positions[:n]
    if any(i >= vocab for p in pos for i in p.ids):
        raise CaptureError(
            f"row {rid!r}: the teacher predicts token ids beyond the tokenizer's {vocab} tokens; "
            "the teacher and `tokenizer` do not match"
        )
    tails = [p.tail_mass for p in pos]
    writer.add(
        rid, range(start, start + n), ids[start:start + n], [p.ids for p in pos],
        [p.logprobs for p in pos], None if any(t is None for t in tails) else tails,
    )
    return n


def _check_student(ctx: JobContext, config: CaptureJob, tokenizer_path: Path) -> None:
    if not config.student:
        return
    from core.models.registry import check_logit_kd, resolve_model

    verdict = check_logit_kd(tokenizer_path, resolve_model(config.student, ctx.workspace))
    if not verdict.ok:
        raise CaptureError(f"teacher '{config.teacher.model}' and student '{config.student}': {verdict.message}")
    ctx.event(verdict.message)


def run(config: CaptureJob, ctx: JobContext) -> None:
    from core.models.registry import resolve_model
    from core.train.common import load_tokenizer, read_template

    tok_ref = config.tokenizer or (config.teacher.model if config.teacher.type != "openai" else None)
    if not tok_ref:
        raise CaptureError("tokenizer: a remote teacher needs `tokenizer` (a local folder with the same tokenizer)")
    tok_path = resolve_model(tok_ref, ctx.workspace)
    _check_student(ctx, config, tok_path)
    template = read_template(ctx, config.template)
    tokenizer = load_tokenizer(tok_path, template)
    convs, no_answer = load_conversations(ctx.workspace, config.input)
    if no_answer:
        ctx.event(f"{len(no_answer)} row(s) without an answer skipped (first: {no_answer[0]})")

    name = cache_name(config)
    meta = CacheMeta(
        teacher=config.teacher.model or (config.teacher.endpoint.base_url if config.teacher.endpoint else ""),
        tokenizer_hash=tokenizer_fingerprint(tokenizer), vocab_size=len(tokenizer), k=config.top_k,
        temperature=config.temperature, logprob_dtype=config.logprob_dtype, dataset=config.input,
        max_length=config.max_length, template_hash=template_fingerprint(template or tokenizer.chat_template),
    )
    folder = cache_folder(ctx, name)
    with LogitCacheWriter(folder, meta) as writer:
        todo = [(rid, msgs) for rid, msgs in convs if rid not in writer]
        total, done = len(convs), len(convs) - len(todo)
        if done:
            ctx.event(f"resuming: {done} of {total} rows already in cache '{name}'")
        if not todo:
            ctx.progress(total, total, unit="rows", rows=total)
            return
        backend = open_backend(config.teacher, ctx)
        if template and hasattr(backend, "tokenizer"):
            backend.tokenizer.chat_template = template  # the teacher renders exactly as we tokenize
        batch = max(1, config.teacher.batch_size)
        unaligned = positions = 0
        first_error = ""
        ctx.progress(done, total, unit="rows", rows=done)
        try:
            for s in range(0, len(todo), batch):
                if ctx.should_stop():
                    ctx.event(f"stopped after {done} of {total} rows; resume to continue", stopped=True)
                    return
                chunk = todo[s:s + batch]
                tokenized = [tokenize_conversation(tokenizer, msgs, config.max_length, template) for _, msgs in chunk]
                scored = backend.score([msgs for _, msgs in chunk], config.top_k, temperature=config.temperature)
                for (rid, _), (ids, mask), sc in zip(chunk, tokenized, scored, strict=True):
                    if getattr(sc, "error", None):
                        ctx.event(f"row {rid!r} not scored: {sc.error}", row=rid)
                        first_error = first_error or sc.error
                        unaligned += 1
                        continue
                    n = store_scored(writer, len(tokenizer), rid, ids, mask, sc)
                    if n == 0:
                        unaligned += 1
                    positions += n
                done += len(chunk)
                if positions == 0 and first_error and writer.meta.rows == 0:
                    raise CaptureError(f"the teacher could not score any row: {first_error}")
                ctx.progress(done, total, unit="rows", rows=done, positions=positions, unaligned=unaligned)
        finally:
            close = getattr(backend, "close", None)
            if close:
                close()
    if unaligned:
        ctx.event(f"{unaligned} row(s) could not be aligned with the tokenizer (different template?) and have no "
                  "teacher logits; KD uses cross-entropy alone on them", unaligned=unaligned)
    size = LogitCache(folder).summary()
    per_token = f", {size['bytes_per_token']:.1f} bytes per token" if size["bytes_per_token"] else ""
    ctx.event(f"logit cache '{name}': {writer.meta.rows} rows, {writer.meta.positions} positions{per_token}",
              cache=name, rows=writer.meta.rows, positions=writer.meta.positions, bytes=size["bytes"])
