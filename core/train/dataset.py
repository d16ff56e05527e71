"""Dataset rows -> tokenized training examples, one tokenization shared by capture, SFT and KD.

Why one function: white-box KD compares the student's prediction at a position with the teacher's at the same
position. The capture job and the KD trainer both tokenize through `tokenize_conversation`, so positions agree by
construction (and the cache stores the forced token so the trainer can verify it). Rows are read through core.data
(`load_rows`, `to_messages`); nothing here parses files.

The loss mask covers assistant tokens only. Chat templates with `{% generation %}` markers give it directly; for
the others (most real models) it is found by rendering the conversation up to each assistant turn and taking the
tokens that turn adds, up to and including its end-of-turn token (trailing whitespace excluded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.data.errors import DataError, RowError
from core.data.rows import to_messages
from core.errors import UserError
from core.workspace import Workspace

IGNORE = -100


class TemplateError(UserError, ValueError):
    """The chat template cannot mark assistant tokens for this conversation."""


@dataclass
class Example:
    id: str
    input_ids: list[int]
    assistant_mask: list[int]

    @property
    def labels(self) -> list[int]:
        return [t if m else IGNORE for t, m in zip(self.input_ids, self.assistant_mask, strict=True)]

    def to_record(self) -> dict[str, Any]:
        """The columns TRL's SFTTrainer accepts as an already-tokenized dataset (+ the row id for KD)."""
        return {"id": self.id, "input_ids": self.input_ids, "labels": self.labels}


@dataclass
class Examples:
    items: list[Example]
    skipped: list[RowError] = field(default_factory=list)  # rows with nothing to learn (no assistant tokens left)
    truncated: int = 0


def load_conversations(ws: Workspace, ref: str) -> tuple[list[tuple[str, list[dict]]], list[RowError]]:
    """(row id, messages) for every usable row, and the rows left out (no answer) with file/line reasons.

    Unreadable records or repeated ids stop the job: KD looks rows up by id, so ids must be unique.
    """
    from core.data.store import load_rows

    rows, errors = load_rows(ws, ref, confined=False)
    if errors:
        raise DataError(f"{ref}: {len(errors)} row(s) cannot be read; fix or re-import the dataset", errors)
    out: list[tuple[str, list[dict]]] = []
    skipped: list[RowError] = []
    dups: list[RowError] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, 1):
        rid = str(row.get("id", ""))
        msgs = to_messages(row)
        if rid in seen:
            dups.append(RowError(ref, i, f"duplicate id {rid!r}"))
        elif not any(m.get("role") == "assistant" and str(m.get("content") or "").strip() for m in msgs):
            skipped.append(RowError(ref, i, f"row {rid!r} has no assistant answer (output) to learn from"))
        else:
            out.append((rid, msgs))
        seen.add(rid)
    if dups:
        raise DataError(f"{ref}: row ids must be unique (the teacher's logits are looked up by id)", dups)
    if not out:
        raise DataError(f"{ref}: no row has an answer to learn from", skipped)
    return out, skipped


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and "generation" in template and "endgeneration" in template


def _render(tokenizer, messages: Sequence[dict], template: str | None, **kw) -> list[int]:
    out = tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=True, return_dict=True, **kw)
    return list(out["input_ids"])


def tokenize_conversation(
    tokenizer, messages: Sequence[dict], max_length: int | None = None, template: str | None = None
) -> tuple[list[int], list[int]]:
    """input_ids and the assistant-token mask of one conversation, truncated at the end to `max_length`."""
    tmpl = template or tokenizer.chat_template
    if not tmpl:
        raise TemplateError(
            "the tokenizer has no chat template; set `template` to a chat template file (e.g. ChatML)"
        )
    if has_generation_markers(tmpl):
        out = tokenizer.apply_chat_template(
            list(messages), chat_template=template, tokenize=True, return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids, mask = list(out["input_ids"]), [int(b) for b in out["assistant_masks"]]
    else:
        ids = _render(tokenizer, messages, template)
        mask = [0] * len(ids)
        for i, m in enumerate(messages):
            if m.get("role") != "assistant":
                continue
            before = _render(tokenizer, messages[:i], template, add_generation_prompt=True) if i else []
            upto = _render(tokenizer, messages[: i + 1], template)
            if ids[: len(upto)] != upto or upto[: len(before)] != before:
                raise TemplateError(
                    "the chat template rewrites earlier turns, so assistant tokens cannot be located; "
                    "use a template with {% generation %} markers"
                )
            end = len(upto)
            specials = set(getattr(tokenizer, "all_special_ids", []) or [])
            # whitespace the template puts after the end-of-turn token is not part of the answer (as with
            # {% generation %} markers, and as the backends' score() counts response tokens)
            while end > len(before) and upto[end - 1] not in specials and not tokenizer.decode([upto[end - 1]]).strip():
                end -= 1
            for j in range(len(before), end):
                mask[j] = 1
    if max_length is not None and len(ids) > max_length:
        ids, mask = ids[:max_length], mask[:max_length]
    return ids, mask


def build_examples(
    conversations: Iterable[tuple[str, list[dict]]],
    tokenizer,
    max_length: int | None,
    template: str | None = None,
    source: str = "",
) -> Examples:
    """Tokenize every conversation; rows left with no assistant token after truncation are skipped (and listed)."""
    out = Examples([])
    for i, (rid, msgs) in enumerate(conversations, 1):
        try:
            ids, mask = tokenize_conversation(tokenizer, msgs, None, template)
        except TemplateError as e:
            raise DataError(f"{source or 'dataset'}: row {rid!r}: {e}") from e
        if max_length is not None and len(ids) > max_length:
            out.truncated += 1
            ids, mask = ids[:max_length], mask[:max_length]
        if not any(mask[1:]):
            out.skipped.append(RowError(source, i, f"row {rid!r}: no answer token within max_length={max_length}"))
            continue
        out.items.append(Example(rid, ids, mask))
    if not out.items:
        raise DataError(
            f"{source or 'dataset'}: no row has answer tokens within max_length={max_length}; raise max_length",
            out.skipped,
        )
    return out


def in_eval_split(row_id: str, share: float, seed: int) -> bool:
    """Stable held-out membership by id: the same rows stay held out across resumes and re-runs."""
    if share <= 0:
        return False
    h = hashlib.sha1(f"{seed}:{row_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < share


def split_examples(items: list[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, eval) by id hash; at least one row on each side when there are two or more and share > 0."""
    if share <= 0 or len(items) < 2:
        return items, []
    train = [e for e in items if not in_eval_split(e.id, share, seed)]
    held = [e for e in items if in_eval_split(e.id, share, seed)]
    if not held:
        held, train = train[-1:], train[:-1]
    if not train:
        train, held = held[:1], held[1:]
    return train, held


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what decides token ids (vocabulary and special tokens): equal fingerprints = interchangeable ids."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    specials = sorted(str(t) for t in getattr(tokenizer, "all_special_tokens", []))
    h = hashlib.sha256()
    for tok, idx in vocab:
        h.update(f"{idx}\t{tok}\n".encode("utf-8", "surrogatepass"))
    h.update(("\x00".join(specials)).encode("utf-8"))
    return h.hexdigest()[:16]


def template_fingerprint(template: str | None) -> str:
    return hashlib.sha256((template or "").encode()).hexdigest()[:16] if template else ""
