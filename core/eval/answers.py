"""Answer checking: exact match after normalisation, and `math-verify` for math answers.

Both compare the final answer of a reply (reasoning removed, see core.chat.reasoning) with the gold answer of a row.
Exact match extracts a short answer first when the reply states one (`\\boxed{…}`, `#### 42`, "the answer is …"), so a
model that explains before answering is not punished for the explanation; math-verify parses LaTeX/expressions and
compares them symbolically (1/2 = 0.5 = \\frac{1}{2}).
"""

from __future__ import annotations

import re
import string
import threading
import unicodedata
from typing import Any

from core.chat.reasoning import final_answer

GOLD_FIELDS = ("answer", "gold", "reference", "solution", "output")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_ANSWER_IS = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:)\s*(.+)", re.IGNORECASE)
_PUNCT = set(string.punctuation) | {"。", "，", "！", "？", "：", "；", "、"}


def gold_answer(row: dict, field: str | None = None) -> str | None:
    """The row's reference answer: `field` if given, else the first of answer / gold / reference / solution / output."""
    keys = (field,) if field else GOLD_FIELDS
    for k in keys:
        v = row.get(k)
        if v not in (None, ""):
            return v if isinstance(v, str) else str(v)
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}` (or `\\fbox{…}`), braces balanced."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = text.find("{", idx)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def extract_short_answer(text: str) -> str:
    """The short answer a reply states: boxed, after `####`, after "the answer is", else the whole answer part."""
    ans = final_answer(text)
    boxed = last_boxed(ans)
    if boxed is not None:
        return boxed
    if "####" in ans:
        return ans.rsplit("####", 1)[1].strip()
    matches = list(_ANSWER_IS.finditer(ans))
    if matches:
        return matches[-1].group(1).strip().splitlines()[0]
    return ans


def normalize(text: str) -> str:
    """Lower case, NFKC, no punctuation, no English articles, single spaces; `1,000` -> `1000`."""
    s = unicodedata.normalize("NFKC", str(text)).lower()
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = "".join(" " if ch in _PUNCT and not _decimal_point(s, i) else ch for i, ch in enumerate(s))
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _decimal_point(s: str, i: int) -> bool:
    return s[i] == "." and 0 < i < len(s) - 1 and s[i - 1].isdigit() and s[i + 1].isdigit()


def exact_match(prediction: str, gold: str) -> bool:
    """True when the normalised short answer of `prediction` equals the normalised gold (whole reply also tried)."""
    g = normalize(extract_short_answer(gold))
    if not g:
        return False
    return g in (normalize(extract_short_answer(prediction)), normalize(final_answer(prediction)))


def _timeout() -> int | None:
    # math-verify's timeouts use SIGALRM, which exists only in the main thread.
    return 5 if threading.current_thread() is threading.main_thread() else None


def _parse(text: str) -> list[Any]:
    from math_verify import parse

    t = _timeout()
    parsed = parse(text, parsing_timeout=t)
    if not parsed and "$" not in text:
        parsed = parse(f"${text}$", parsing_timeout=t)
    return parsed


def math_verify_match(prediction: str, gold: str) -> bool:
    """Symbolic equivalence of the reply's final answer and the gold answer (math-verify); unparseable = False."""
    from math_verify import verify

    g = _parse(extract_short_answer(gold) if last_boxed(gold) or "####" in gold else gold)
    if not g:
        return False
    ans = final_answer(prediction)
    p = _parse(ans)
    if not p:
        return False
    return bool(verify(g, p, timeout_seconds=_timeout()))
