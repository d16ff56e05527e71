"""Secrets: configs reference API keys by env-var name; literal keys are accepted but never echoed or stored."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
SECRET_KEY_NAMES = re.compile(r"(api_?key|token|secret|password|passwd|authorization)$", re.IGNORECASE)
# Strings that look like bearer keys even when they sit under an innocent name (e.g. in a log line).
KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|Bearer\s+[A-Za-z0-9._\-]{8,})")


def is_secret_key(name: str) -> bool:
    return bool(SECRET_KEY_NAMES.search(name)) and not name.endswith("_env")


def redact(obj: Any) -> Any:
    """A deep copy with every secret-named value replaced, for anything written to disk or shown."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return scrub(obj)
    return obj


def scrub(text: str, known: list[str] | tuple[str, ...] = ()) -> str:
    """Remove known secret values and key-shaped strings from free text (logs, error messages)."""
    for value in known:
        if value and len(value) >= 4:
            text = text.replace(value, REDACTED)
    return KEY_PATTERN.sub(REDACTED, text)
