"""A local model through transformers: batched generation, streaming, top-k log-probs, scoring.

Generation sorts the prompts by length, cuts them into left-padded batches (rows and padded tokens capped) and
decodes each batch with its own loop in which a finished row leaves the batch: on a CPU a decoding step costs about
what its rows cost, so rows that already ended would otherwise be paid for until the batch's longest answer ends
(bench/demo.py gen: CPU time per generated token at batch 16 -> 0.75x; at batch 32 -> 0.58x of model.generate at 16).
The top-k log-probs of each step, when asked, come from the same logits (capture while labelling).

Runs in a worker process (a job or a serve job), never in the studio process: importing this module is cheap, the
torch/transformers imports happen when a backend is built.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from core.llm.base import BackendError, Completion, Conversation, SamplingParams, ScoredResponse, TokenTopK
from core.modelpath import require_chat_template

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}
SCORE_LOGITS_BUDGET = 2 * 1024**3  # bytes of float32 logits one scoring forward may produce
GEN_TOKENS_BUDGET = 16384  # padded tokens (rows x (longest prompt + max_new_tokens)) one generation batch may hold
# generation_config fields `_decode` honours (or that do not change decoding); any other one set -> model.generate
_LOOP_GENERATION_FIELDS = {
    "max_length", "max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "use_cache",
    "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "output_attentions",
    "output_hidden_states", "output_scores", "output_logits", "return_dict_in_generate", "num_return_sequences",
    "transformers_version", "_from_model_config",
}


def plan_batches(lengths: Sequence[int], max_rows: int, new_tokens: int, budget: int) -> list[list[int]]:
    """Indices into `lengths` (prompt lengths) grouped into generation batches: sorted by length so a batch's
    prompts need little padding, each batch at most `max_rows` rows and `budget` padded tokens (one row always fits).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        cur = batches[-1] if batches else None
        width = lengths[i] + new_tokens  # sorted: the newest row is the batch's longest
        if cur is None or len(cur) >= max_rows or (len(cur) + 1) * width > budget:
            batches.append([i])
        else:
            cur.append(i)
    return batches


def pick_device(device: str | None = None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class HFLocalBackend:
    """transformers model + tokenizer. Not thread-safe by itself: a lock serializes calls (one model, one forward)."""

    def __init__(
        self,
        model_path: str | Path,
        dtype: str = "auto",
        device: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
        name: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = Path(model_path)
        self.name = name or self.path.name
        self.batch_size = max(1, batch_size)
        self.device = pick_device(device)
        require_chat_template(self.path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=trust_remote_code)
            torch_dtype = getattr(torch, _DTYPES[dtype]) if dtype in _DTYPES else "auto"
            self.model = AutoModelForCausalLM.from_pretrained(
                self.path, dtype=torch_dtype, trust_remote_code=trust_remote_code
            ).to(self.device)
        except (OSError, ValueError) as e:
            raise BackendError(f"cannot load model '{self.path}': {e}") from e
        self.model.eval()
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.eos_ids = self._eos_ids()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- helpers

    def _eos_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def render(self, conversation: Conversation, add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            list(conversation), tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def _encode_batch(self, texts: list[str]):
        tok = self.tokenizer
        tok.padding_side = "left"
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _gen_kwargs(self, params: SamplingParams) -> dict:
        kw: dict = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.eos_ids,
            "do_sample": not params.greedy,
        }
        if params.greedy:
            kw.update(temperature=None, top_p=None, top_k=None)
        else:
            kw.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or 0)
        if params.stop:
            kw.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return kw

    @staticmethod
    def _cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
        cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
        return (text[:cut], True) if cut >= 0 else (text, False)

    # ---------------------------------------------------------------- protocol

    def chat(
        self, conversations: Sequence[Conversation], params: SamplingParams, top_logprobs: int = 0
    ) -> list[Completion]:
        """Prompts sorted by length and cut into batches of at most `batch_size` rows and GEN_TOKENS_BUDGET padded
        tokens (prompt + max_new_tokens); each batch decodes with a rows-that-finished-leave-the-batch loop
        (`_decode`), or through `model.generate` for what the loop does not cover (`_fallback_reason`)."""
        prompts = [self.tokenizer(self.render(c), add_special_tokens=False)["input_ids"] for c in conversations]
        out: list[Completion | None] = [None] * len(prompts)
        for batch in plan_batches([len(p) for p in prompts], self.batch_size, params.max_new_tokens,
                                  GEN_TOKENS_BUDGET):
            done = self._chat_batch([prompts[i] for i in batch], params, top_logprobs)
            for i, c in zip(batch, done, strict=True):
                out[i] = c
        return out  # type: ignore[return-value]

    def _chat_batch(self, prompts: list[list[int]], params: SamplingParams, k: int) -> list[Completion]:
        import torch

        enc = self._left_pad(prompts)
        with self._lock, torch.inference_mode():
            if self._fallback_reason is None:
                gen, steps = self._decode(enc, params, k)
            else:
                gen, steps = self._generate(enc, params, k)
        completions = []
        for row, ids in enumerate(gen):
            n, finish = len(ids), "length"
            for i, t in enumerate(ids):
                if t in self.eos_ids:
                    n, finish = i + 1, "stop"
                    break
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
            text, stopped = self._cut_at_stop(text, params.stop)
            if stopped:
                finish = "stop"
            top = None
            if k > 0:
                top = [TokenTopK(ids=i, logprobs=v, tokens=self.tokenizer.convert_ids_to_tokens(i),
                                 tail_mass=max(0.0, 1.0 - sum(math.exp(x) for x in v)))
                       for i, v in steps[row][:n]]
            completions.append(Completion(
                text=text, prompt_tokens=len(prompts[row]), completion_tokens=n, finish_reason=finish,
                top_logprobs=top, token_ids=ids[:n],
            ))
        return completions

    def _left_pad(self, prompts: list[list[int]]) -> dict:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[r, width - len(p):] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    @property
    def _fallback_reason(self) -> str | None:
        """Why `_decode` cannot stand in for `model.generate` with this model, or None when it can: an
        encoder-decoder, or a generation_config that asks for decoding the loop does not implement."""
        if getattr(self.model.config, "is_encoder_decoder", False):
            return "encoder-decoder model"
        extra = sorted(set(self.model.generation_config.to_diff_dict()) - _LOOP_GENERATION_FIELDS)
        return f"generation_config sets {', '.join(extra)}" if extra else None

    def _processors(self, params: SamplingParams):
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        # the order and classes model.generate uses for these settings
        procs = LogitsProcessorList()
        penalty = self.model.generation_config.repetition_penalty
        if penalty is not None and penalty != 1.0:
            procs.append(RepetitionPenaltyLogitsProcessor(penalty=float(penalty)))
        if not params.greedy:
            if params.temperature != 1.0:
                procs.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k:
                procs.append(TopKLogitsWarper(top_k=params.top_k, min_tokens_to_keep=1))
            if params.top_p < 1.0:
                procs.append(TopPLogitsWarper(top_p=params.top_p, min_tokens_to_keep=1))
        return procs

    def _decode(self, enc: dict, params: SamplingParams, k: int) -> tuple[list[list[int]], list[list]]:
        """Incremental decoding of a left-padded batch where a finished row leaves the batch (its cache rows are
        dropped), so a step costs the rows still generating, not the whole batch until its longest answer ends.

        The same computation as `model.generate` for the settings it covers (positions from the attention mask,
        the same logits processors); top-k log-probs, when asked, come from the raw logits of each step (a
        teacher-forcing pass over the answer computes the same distributions). Returns per row the generated ids
        and, per step, (top-k ids, top-k log-probs)."""
        import torch
        from transformers import DynamicCache

        model, ids, mask = self.model, enc["input_ids"], enc["attention_mask"]
        rows = ids.shape[0]
        procs = self._processors(params)
        gen = None
        if not params.greedy and params.seed is not None:
            gen = torch.Generator(device=ids.device).manual_seed(params.seed)
        eos = torch.tensor(self.eos_ids, device=ids.device)
        cache = DynamicCache(config=model.config)
        pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        # transformers 5 names the cache argument `cache` (`past_key_values` is deprecated; remote code may differ)
        kv = "cache" if "cache" in self._forward_params else "past_key_values"
        extra = {"logits_to_keep": 1} if "logits_to_keep" in self._forward_params else {}
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **{kv: cache},
                       **extra).logits[:, -1]
        alive = torch.arange(rows, device=ids.device)  # batch row -> original row
        seqs, nxt = ids, pos[:, -1:] + 1
        out: list[list[int]] = [[] for _ in range(rows)]
        tops: list[list] = [[] for _ in range(rows)]
        for step in range(params.max_new_tokens):
            logits = logits.float()
            if k > 0:
                vals, idx = torch.log_softmax(logits, -1).topk(k, dim=-1)
                for r, i, v in zip(alive.tolist(), idx.tolist(), vals.tolist(), strict=True):
                    tops[r].append((i, v))
            scores = procs(seqs, logits)
            if params.greedy:
                tok = scores.argmax(-1)
            else:
                tok = torch.multinomial(torch.softmax(scores, -1), 1, generator=gen)[:, 0]
            finished = torch.isin(tok, eos)
            for r, t in zip(alive.tolist(), tok.tolist(), strict=True):
                out[r].append(t)
            if params.stop:
                for j, r in enumerate(alive.tolist()):
                    if not finished[j] and any(s in self.tokenizer.decode(out[r], skip_special_tokens=True)
                                               for s in params.stop if s):
                        finished[j] = True
            if step + 1 == params.max_new_tokens or bool(finished.all()):
                break
            keep = (~finished).nonzero()[:, 0]
            if len(keep) < len(alive):
                cache.batch_select_indices(keep)
                alive, tok, mask, seqs, nxt = alive[keep], tok[keep], mask[keep], seqs[keep], nxt[keep]
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=-1)
            seqs = torch.cat([seqs, tok[:, None]], dim=-1)
            logits = model(input_ids=tok[:, None], attention_mask=mask, position_ids=nxt, use_cache=True,
                           **{kv: cache}).logits[:, -1]
            nxt = nxt + 1
        return out, tops

    def _generate(self, enc: dict, params: SamplingParams, k: int) -> tuple[list[list[int]], list[list]]:
        """`model.generate` over the whole batch (rows that finished are padded until the longest ends)."""
        import torch

        if params.seed is not None:
            torch.manual_seed(params.seed)
        res = self.model.generate(**enc, **self._gen_kwargs(params), return_dict_in_generate=True,
                                  output_logits=k > 0)
        gen = res.sequences[:, enc["input_ids"].shape[1]:].tolist()
        tops: list[list] = [[] for _ in gen]
        if k > 0:
            for step_logits in res.logits:
                vals, idx = torch.log_softmax(step_logits.float(), -1).topk(k, dim=-1)
                for r, (i, v) in enumerate(zip(idx.tolist(), vals.tolist(), strict=True)):
                    tops[r].append((i, v))
        return gen, tops

    def stream(self, conversation: Conversation, params: SamplingParams) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        enc = self._encode_batch([self.render(conversation)])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with self._lock, torch.inference_mode():
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    self.model.generate(**enc, **self._gen_kwargs(params), streamer=streamer)
            except BaseException as e:  # surfaced to the consumer below
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        sent = ""
        for piece in streamer:
            full, stopped = self._cut_at_stop(sent + piece, params.stop)
            if len(full) > len(sent):
                yield full[len(sent):]
                sent = full
            if stopped:
                for _ in streamer:  # drain so the generating thread (stopped by stop_strings) can finish
                    pass
                break
        thread.join()
        if errors:
            raise errors[0]

    def response_span(self, conversation: Conversation) -> tuple[list[int], int, int]:
        """Token ids of the whole conversation and the [start, end) span of the final assistant response.

        end stops after the end-of-turn token: whitespace a template appends after it is not part of the answer.
        """
        if not conversation or conversation[-1].get("role") != "assistant":
            raise BackendError("score(): each conversation must end with the assistant response to score")
        full = self.tokenizer(self.render(conversation, add_generation_prompt=False), add_special_tokens=False)
        prefix = self.tokenizer(self.render(conversation[:-1], add_generation_prompt=True), add_special_tokens=False)
        ids, start = full["input_ids"], len(prefix["input_ids"])
        if start == 0:
            raise BackendError("score(): the chat template renders no prompt before the response")
        if ids[:start] != prefix["input_ids"]:
            raise BackendError("score(): the chat template renders the prompt differently with and without the "
                               "response, so response tokens cannot be located")
        end = len(ids)
        while end > start and ids[end - 1] not in self.eos_ids and not self.tokenizer.decode(ids[end - 1]).strip():
            end -= 1
        return ids, start, end

    def score(self, conversations: Sequence[Conversation], k: int, temperature: float = 1.0) -> list[ScoredResponse]:
        """Batches of up to batch_size rows, fewer when their logits would exceed SCORE_LOGITS_BUDGET bytes (a 150k
        vocabulary makes B x T x V logits large: only the response part of the sequence is kept)."""
        spans = [self.response_span(c) for c in conversations]
        vocab = self.model.get_output_embeddings().weight.shape[0]
        out: list[ScoredResponse] = []
        batch: list[tuple[list[int], int, int]] = []
        for span in spans:
            trial = [*batch, span]
            keep = max(len(i) for i, _, _ in trial) - min(s for _, s, _ in trial) + 1
            if batch and (len(trial) > self.batch_size or len(trial) * keep * vocab * 4 > SCORE_LOGITS_BUDGET):
                out.extend(self._score_batch(batch, k, temperature))
                batch = []
            batch.append(span)
        if batch:
            out.extend(self._score_batch(batch, k, temperature))
        return out

    def _score_batch(self, spans: list[tuple[list[int], int, int]], k: int, temperature: float) -> list[ScoredResponse]:
        import torch

        width = max(len(ids) for ids, _, _ in spans)
        pad = self.tokenizer.pad_token_id
        # right padding: real tokens keep positions 0..n-1 exactly as in an unpadded forward pass
        input_ids = torch.full((len(spans), width), pad, dtype=torch.long)
        mask = torch.zeros((len(spans), width), dtype=torch.long)
        for r, (ids, _, _) in enumerate(spans):
            input_ids[r, :len(ids)] = torch.tensor(ids)
            mask[r, :len(ids)] = 1
        # logits only from the first position that predicts a response token (prompt logits are never needed)
        first = min(start for _, start, _ in spans) - 1
        kwargs = {"logits_to_keep": width - first} if self._accepts_logits_to_keep else {}
        with self._lock, torch.inference_mode():
            logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                **kwargs).logits
        offset = width - logits.shape[1]  # position j of the sequence is logits[:, j - offset]
        results = []
        for r, (ids, start, end) in enumerate(spans):
            # logits at position j predict token j + 1
            lp = torch.log_softmax(logits[r, start - 1 - offset:end - 1 - offset].float() / temperature, dim=-1)
            vals, idx = lp.topk(k, dim=-1)
            target = torch.tensor(ids[start:end], device=lp.device)
            token_lp = lp.gather(-1, target[:, None])[:, 0]
            tails = (1.0 - vals.exp().sum(-1)).clamp(0.0, 1.0)
            positions = [TokenTopK(ids=i, logprobs=v, tail_mass=t)
                         for i, v, t in zip(idx.tolist(), vals.tolist(), tails.tolist(), strict=True)]
            results.append(ScoredResponse(positions=positions, response_token_ids=ids[start:end],
                                          token_logprobs=token_lp.tolist()))
        return results

    @property
    def _forward_params(self) -> set[str]:
        import inspect

        return set(inspect.signature(self.model.forward).parameters)

    @property
    def _accepts_logits_to_keep(self) -> bool:
        return "logits_to_keep" in self._forward_params

    def close(self) -> None:
        self.model = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
