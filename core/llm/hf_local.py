"""A local model through transformers: batched generation with left padding, streaming, top-k log-probs, scoring.

Runs in a worker process (a job or a serve job), never in the studio process: importing this module is cheap, the
torch/transformers imports happen when a backend is built.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from core.llm.base import BackendError, Completion, Conversation, SamplingParams, ScoredResponse, TokenTopK
from core.modelpath import require_chat_template

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}
SCORE_LOGITS_BUDGET = 2 * 1024**3  # bytes of float32 logits one scoring forward may produce


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
        out: list[Completion] = []
        for start in range(0, len(conversations), self.batch_size):
            out.extend(self._chat_batch(conversations[start:start + self.batch_size], params, top_logprobs))
        return out

    def _chat_batch(self, convs: Sequence[Conversation], params: SamplingParams, k: int) -> list[Completion]:
        import torch

        texts = [self.render(c) for c in convs]
        enc = self._encode_batch(texts)
        with self._lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            res = self.model.generate(
                **enc, **self._gen_kwargs(params), return_dict_in_generate=True, output_logits=k > 0
            )
        prompt_len = enc["input_ids"].shape[1]
        gen = res.sequences[:, prompt_len:].tolist()
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
                top = []
                for step in range(n):
                    lp = torch.log_softmax(res.logits[step][row].float(), dim=-1)
                    vals, idx = lp.topk(k)
                    top.append(TokenTopK(ids=idx.tolist(), logprobs=vals.tolist(),
                                         tokens=self.tokenizer.convert_ids_to_tokens(idx.tolist()),
                                         tail_mass=max(0.0, 1.0 - float(vals.exp().sum()))))
            completions.append(Completion(
                text=text, prompt_tokens=int(enc["attention_mask"][row].sum()), completion_tokens=n,
                finish_reason=finish, top_logprobs=top,
            ))
        return completions

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
    def _accepts_logits_to_keep(self) -> bool:
        import inspect

        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def close(self) -> None:
        self.model = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
