"""`ReplyStats` in a module of its own: the session records it and the renderer shows it, so neither has to import
the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ReplyStats:
    """Timing of one streamed reply. `tokens` is the server's count once it reports usage (`tokens_exact`); before
    that, and from a server that reports none, the number of stream chunks (which need not be tokens)."""

    ttft_s: float | None = None  # time to first token
    tokens: int = 0
    tokens_exact: bool = False  # True once `tokens` is the server's own count
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
        """'TTFT 0.21 s · 38.5 tok/s · 120 tokens' (the column footer); '~' marks figures counted in chunks."""
        approx = "" if self.tokens_exact else "~"
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        tps = self.tokens_per_s
        if tps is not None:
            parts.append(f"{approx}{tps:.1f} tok/s")
        parts.append(f"{approx}{self.tokens} tokens")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens_per_s"] = self.tokens_per_s
        return d
