"""UI text in English and Chinese. One folder per language, one YAML file per tab (`studio/i18n/<lang>/<tab>.yaml`);
keys are `<file>.<key>`. A missing Chinese string falls back to English, and a test checks that none is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

import yaml

YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader where PyYAML has it: ~10x faster
LANGS = ("en", "zh")
DEFAULT_LANG = "en"
_DIR = Path(__file__).parent / "i18n"
_SPOKEN: ContextVar[str | None] = ContextVar("eds_spoken_lang", default=None)


def _flatten(prefix: str, obj: object, out: dict[str, str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = "" if obj is None else str(obj)


@cache
def strings(lang: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in sorted((_DIR / lang).glob("*.yaml")):
        _flatten(f.stem, yaml.load(f.read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}, out)  # noqa: S506
    return out


def t(key: str, lang: str = DEFAULT_LANG, /, **fmt: object) -> str:
    """The text for `key` in `lang` (English if missing there; the key itself if missing everywhere). Positional-only,
    so a text's own fields may be named `key` or `lang` (an error's params reach here as fields)."""
    text = strings(lang).get(key) or strings(DEFAULT_LANG).get(key) or key
    return text.format(**fmt) if fmt else text


def has(key: str) -> bool:
    """Whether English has `key` (every key must; other languages fall back to it)."""
    return key in strings(DEFAULT_LANG)


def missing(lang: str) -> list[str]:
    """Keys English has and `lang` lacks (tested to be empty)."""
    return sorted(set(strings(DEFAULT_LANG)) - set(strings(lang)))


def spoken() -> str | None:
    """The language set by `speaking` around the code running now (None: the page's, see `UIContext.lang`)."""
    return _SPOKEN.get()


@contextmanager
def speaking(lang: str) -> Iterator[None]:
    """Word everything inside in `lang`, whatever page asked (tests; code that runs outside a page's event)."""
    token = _SPOKEN.set(lang if lang in LANGS else DEFAULT_LANG)
    try:
        yield
    finally:
        _SPOKEN.reset(token)
