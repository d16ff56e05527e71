"""The backend protocol every teacher, judge and student is reached through.

Implementations: `hf_local` (transformers, in a worker process), `openai_http` (any OpenAI-compatible server,
including a managed vLLM server). Synthesis, judging, logit capture, evaluation and chat use only this protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from core.errors import BackendError as BackendError  # re-exported: backends and their callers import it from here

if TYPE_CHECKING:
    from core.config.base import Sampling

Message = dict  # {"role": "system"|"user"|"assistant", "content": str}
Conversation = list[Message]


@dataclass
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int | None = None
    max_new_tokens: int = 512
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    @classmethod
    def from_sampling(cls, s: Sampling) -> SamplingParams:
        """A config's Sampling block as backend params; here, not on Sampling, so core.config imports nothing above
        it."""
        return cls(**s.model_dump())

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class TokenTopK:
    """The top-k alternatives at one position: token ids (or token strings for remote APIs) and log-probs."""

    ids: list[int]
    logprobs: list[float]
    tokens: list[str] | None = None
    tail_mass: float | None = None  # 1 - sum(exp(logprobs)): probability outside the top-k


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # stop | length | error
    top_logprobs: list[TokenTopK] | None = None  # per generated token, when asked
    token_ids: list[int] | None = None  # the generated token ids, where the backend knows them (local models)
    error: str | None = None  # set when this request failed after retries (the row goes to rejects)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ScoredResponse:
    """Teacher forcing of prompt + given response: per response position, the teacher's top-k.

    Response positions are the tokens after the generation prompt up to the end of the assistant turn (its
    end-of-turn token included, trailing whitespace the template adds after it excluded), i.e. exactly the tokens a
    `{% generation %}` assistant mask covers. `token_logprobs[i]` is the log-prob of the actual response token i.
    """

    positions: list[TokenTopK]
    response_token_ids: list[int]
    token_logprobs: list[float] | None = None
    error: str | None = None  # set when this row could not be scored (remote backends)

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Backend(Protocol):
    name: str

    def chat(
        self, conversations: Sequence[Conversation], params: SamplingParams, top_logprobs: int = 0
    ) -> list[Completion]:
        """Batched generation; one Completion per conversation, in order. Failures are per row (Completion.error)."""

    def stream(self, conversation: Conversation, params: SamplingParams) -> Iterator[str]:
        """Text deltas as they are generated."""

    def score(
        self, conversations: Sequence[Conversation], k: int, temperature: float = 1.0
    ) -> list[ScoredResponse]:
        """Teacher forcing: each conversation ends with the assistant response to score; one forward pass.

        Log-probs are of softmax(logits / temperature).
        """

    def close(self) -> None: ...
