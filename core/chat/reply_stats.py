"""`ReplyStats` in a module of its own: the session records it and the renderer shows it, so neither has to import
the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ReplyStats:
    """Timing of one streamed reply. Tokens are counted from the stream (server usage when it reports it)."""

    ttft_s: float | None = None  # time to first token
    tokens: int = 0
    elapsed_s: float | None = None  # first request byte to last token
    error: str | None = None
    finished: bool = False

    @property
    def tokens_per_s(self) -> float | None:
        if self.ttft_s is None or self.elapsed_s is None or self.tokens < 2:
            return None
        gen = self.elapsed_s - self.ttft_s
        return (self.tokens - 1) / gen if gen > 0 else None

    def describe(self) -> str:
        """'TTFT 0.21 s · 38.5 tok/s · 120 tokens' (the column footer)."""
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        tps = self.tokens_per_s
        if tps is not None:
            parts.append(f"{tps:.1f} tok/s")
        parts.append(f"{self.tokens} tokens")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens_per_s"] = self.tokens_per_s
        return d
