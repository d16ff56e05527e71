"""Capture while labelling: the teacher's top-k per answer token, recorded as it generates, written as a logit cache.

The capture job (core.train.capture) runs the teacher once more over every labelled row (teacher forcing) to get the
distributions white-box KD learns from. A local teacher that is labelling computes exactly those distributions while
it generates: at each step its logits over the next token given the prompt and the answer so far. A synth job with
`capture` (label with a transformers teacher) keeps the top-k of each step (no second pass) and writes them here.

A row is stored from its generation where the generation saw what training will: the row's training conversation,
tokenized as the capture job and the KD trainer tokenize it (core.train.dataset.tokenize_conversation), must begin
with the very prompt tokens the teacher was given, and the answer must re-tokenize into the generated ids (max_length
may cut it). The other rows (a small model often writes a token sequence the tokenizer would split otherwise, e.g.
"Ġ" + "add" for "Ġadd"; or the job's system prompt is not part of the row) are teacher-forced right away by the same
teacher, batched (`score()`, as the capture job does). The cache's identity (teacher, tokenizer, k, temperature 1,
log-prob dtype) is the one the capture step computes, so that step, run next on the same dataset and cache, finds the
rows done (it teacher-forces only rows a stopped job had not written yet).

One difference from teacher forcing: an answer cut at max_new_tokens has no distribution for its last position (the
one that predicts the end-of-turn token the template adds): generation stopped before computing it. KD uses
cross-entropy alone there.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from core.config.data_jobs import LiveCaptureSpec, SynthJob
from core.jobs.context import JobContext
from core.llm.base import Completion, ScoredResponse
from core.train.capture import align, cache_folder, store_scored
from core.train.dataset import template_fingerprint, tokenize_conversation, tokenizer_fingerprint
from core.train.logit_cache import CacheMeta, LogitCacheWriter

TEMPERATURE = 1.0  # the raw logits of each step: softmax(logits / 1)


def run(config: SynthJob, ctx: JobContext) -> None:
    """The synth job's entry (SynthJob.ENTRY): core.synth.job.run, given this module's cache writer for `capture`.
    Here, not in core.synth, because the training room builds on the synthesis room (never the other way round)."""
    from core.synth import job as synth_job

    synth_job.run(config, ctx, capture=open_capture)


def open_capture(config: SynthJob, target, ctx: JobContext, backend) -> LiveCapture:
    assert config.capture is not None
    return LiveCapture(config.capture, config.teacher.model, target.dataset or str(target.rows), ctx, backend)


class LiveCapture:
    """Opened by the synth job next to its output: `add` after each written row, `force` after the last one (the
    rows still queued for teacher forcing), `close` at the end."""

    def __init__(self, spec: LiveCaptureSpec, teacher_model: str, dataset: str, ctx: JobContext, backend):
        from core.models.registry import resolve_model
        from core.train.common import load_tokenizer

        self.spec = spec
        self.tokenizer = load_tokenizer(Path(resolve_model(teacher_model, ctx.workspace)))
        meta = CacheMeta(
            teacher=teacher_model, tokenizer_hash=tokenizer_fingerprint(self.tokenizer),
            vocab_size=len(self.tokenizer), k=spec.top_k, temperature=TEMPERATURE,
            logprob_dtype=spec.logprob_dtype, dataset=dataset, max_length=spec.max_length,
            template_hash=template_fingerprint(self.tokenizer.chat_template),
        )
        self.writer = LogitCacheWriter(cache_folder(ctx, spec.output), meta)
        self.backend = backend
        self.stored = self.forced = self.positions = 0
        self.why_forced: Counter[str] = Counter()
        self._queue: list[tuple[str, list[dict], list[int], list[int]]] = []  # rows to teacher-force

    @property
    def k(self) -> int:
        return self.spec.top_k

    def add(self, row_id: str, prompt: list[dict], row: dict, completion: Completion | None) -> None:
        """Store the row's top-k from its generation, or queue it for teacher forcing (reason counted)."""
        from core.data.rows import to_messages

        if row_id in self.writer:
            return
        msgs = to_messages(row)
        ids, mask = tokenize_conversation(self.tokenizer, msgs, self.spec.max_length)
        why = self._unusable(prompt, ids, mask, completion)
        if why:
            self.why_forced[why] += 1
            self._queue.append((row_id, msgs, ids, mask))
            if len(self._queue) >= max(1, getattr(self.backend, "batch_size", 8)):
                self.force()
            return
        scored = ScoredResponse(positions=completion.top_logprobs or [], response_token_ids=completion.token_ids or [])
        self.positions += store_scored(self.writer, len(self.tokenizer), row_id, ids, mask, scored)
        self.stored += 1

    def _unusable(self, prompt: list[dict], ids: list[int], mask: list[int], completion: Completion | None) -> str:
        """Why the generation's top-k cannot stand for teacher forcing of this row ('' when it can)."""
        if completion is None or not completion.top_logprobs or completion.token_ids is None:
            return "the backend gave no top-k"
        asked = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True)["input_ids"]
        start, n = align(ScoredResponse(positions=[], response_token_ids=completion.token_ids), ids, mask)
        if list(asked) != ids[:start]:
            return "the training conversation's prompt differs from the one the teacher answered"
        end = start
        while end < len(mask) and mask[end]:
            end += 1
        # the whole answer as training tokenizes it (up to max_length), less the end-of-turn position of an answer
        # cut at max_new_tokens, which generation never computed
        cut = completion.finish_reason == "length" and n == len(completion.token_ids) == end - start - 1
        return "" if n > 0 and (n >= end - start or cut) else "the answer re-tokenizes into other ids"

    def force(self) -> None:
        """Teacher-force the queued rows (one batched scoring pass) and store them."""
        if not self._queue:
            return
        queue, self._queue = self._queue, []
        scored = self.backend.score([msgs for _, msgs, _, _ in queue], self.k, temperature=TEMPERATURE)
        for (rid, _, ids, mask), sc in zip(queue, scored, strict=True):
            if getattr(sc, "error", None):
                continue  # left to the capture step
            n = store_scored(self.writer, len(self.tokenizer), rid, ids, mask, sc)
            self.forced += n > 0
            self.positions += n

    def summary(self) -> str:
        text = (f"logit cache '{self.spec.output}': {self.stored} row(s) captured while generating, {self.forced} "
                f"teacher-forced, {self.positions} positions")
        if self.why_forced:
            text += " (teacher-forced: " + "; ".join(f"{n} {r}" for r, n in self.why_forced.most_common()) + ")"
        return text

    def close(self) -> None:
        self.writer.close()
