"""Prompt templates of the synthesis operators: editable text files with {placeholders}.

Defaults ship in `assets/templates/<operator>.txt`; users edit and save their own under `workspace/templates/`.
Only the operator's own placeholders are substituted (`{{` and `}}` give literal braces), so a template may contain
JSON or code; a placeholder the operator does not offer is reported by name before any teacher call.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import UserError
from core.workspace import Workspace

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "templates"

PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "label": ("instruction",),
    "expand": ("examples",),
    "refine": ("instruction",),
    "extract": ("text",),
    "cot_generate": ("instruction",),
    "long2short": ("instruction", "cot"),
    "short2long": ("instruction", "cot"),
    "classify": ("instruction", "categories"),
    # judge rubrics (core.cot): the response being graded is the required placeholder
    **{f"judge_{m}": ("response", "instruction") for m in (
        "rv", "cd", "correctness", "informativeness", "helpfulness", "generalization")},
    # CogPO's Critique–Rethink–Verify (core.pairs.crv): the critic's label, the verifier's same-answer check
    "crv_critique": ("cot", "instruction", "student"),
    "crv_verify": ("rewrite", "instruction", "original"),
}
# EasyDistill 1.x `inference.prompt` mode: the request is the prompt, a newline, then this block.
V1_BLOCKS: dict[str, str] = {
    "label": "{instruction}",
    "expand": "{examples}",
    "refine": "{instruction}",
    "extract": "{text}",
    "cot_generate": "{instruction}",
    "long2short": "Simplify the reasoning process for the problem below.\n\nProblem:\n{instruction}\n\nAnswer:\n{cot}"
                  "\n\nSimplified Reasoning Process:",
    "short2long": "Extend the reasoning process for the problem below.\n\nProblem:\n{instruction}\n\nAnswer:\n{cot}"
                  "\n\nExtended Reasoning Process:",
    "classify": "{instruction}",
}
_PH = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


class TemplateError(UserError, ValueError):
    pass


def default_template(operator: str) -> str:
    p = ASSETS / f"{operator}.txt"
    if not p.is_file():
        raise TemplateError(f"no default template for operator '{operator}' ({p} missing)")
    return p.read_text(encoding="utf-8").rstrip("\n")


def v1_template(operator: str, prompt: str) -> str:
    """The template equivalent of an EasyDistill 1.x `inference.prompt` (literal braces in the prompt escaped)."""
    return prompt.replace("{", "{{").replace("}", "}}") + "\n" + V1_BLOCKS[operator]


def placeholders_in(text: str) -> list[str]:
    return [m.group(1) for m in _PH.finditer(text) if m.group(1)]


def check_template(operator: str, text: str) -> None:
    """Refuse a template that uses a placeholder the operator cannot fill, or omits the one carrying the input."""
    allowed = PLACEHOLDERS[operator]
    used = placeholders_in(text)
    unknown = sorted({u for u in used if u not in allowed})
    if unknown:
        raise TemplateError(
            f"template for '{operator}' uses unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"it can use {', '.join('{' + a + '}' for a in allowed)} (write {{{{ and }}}} for literal braces)"
        )
    if allowed[0] not in used:
        raise TemplateError(f"template for '{operator}' must contain {{{allowed[0]}}} (where the input goes)")


def render(text: str, values: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        name = m.group(1)
        return str(values[name]) if name in values else tok

    return _PH.sub(sub, text)


def template_path(ws: Workspace, name: str) -> Path:
    name = name.strip().removesuffix(".txt")
    if not TEMPLATE_NAME.match(name):
        raise TemplateError(f"'{name}' is not a valid template name: letters, digits, '.', '_' or '-'")
    return ws.inside(ws.templates / f"{name}.txt")  # never read or written through a link leading out


def save_template(ws: Workspace, name: str, operator: str, text: str) -> Path:
    """Save an edited template into the workspace (checked first, so a broken one is never saved)."""
    check_template(operator, text)
    p = template_path(ws, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    return p


def list_templates(ws: Workspace) -> list[str]:
    return sorted(p.stem for p in ws.templates.glob("*.txt")) if ws.templates.exists() else []


def load_template(operator: str, ref: str | None = None, ws: Workspace | None = None, prompt: str | None = None
                  ) -> str:
    """The template text a job uses: a 1.x prompt, a workspace template name, a file path, or the default."""
    if prompt:
        return v1_template(operator, prompt)
    if not ref:
        return default_template(operator)
    if ws is not None and TEMPLATE_NAME.match(ref.removesuffix(".txt")):
        p = template_path(ws, ref)
        if p.is_file():
            return p.read_text(encoding="utf-8").rstrip("\n")
    p = ws.local(ref, ws.root) if ws is not None else Path(ref).expanduser()
    if not p.is_file():
        raise TemplateError(f"template '{ref}' not found (neither a workspace template nor a file)")
    return p.read_text(encoding="utf-8").rstrip("\n")


def placeholder_list(operator: str) -> str:
    """The placeholders an operator fills, as a person writes them: "{instruction}, {cot}"."""
    return ", ".join("{" + p + "}" for p in PLACEHOLDERS[operator])


def template_text(ws: Workspace, operator: str, choice: str | None, confine: bool = True) -> str:
    """The text a template picker's value stands for: empty = the operator's default, else a workspace template by
    name, else a file — confined to the workspace for a web visitor (`confine`): a typed path cannot read elsewhere."""
    choice = (choice or "").strip()
    if not choice:
        return default_template(operator)
    if TEMPLATE_NAME.match(choice.removesuffix(".txt")) and template_path(ws, choice).is_file():
        return load_template(operator, choice, ws)
    if confine:
        ws.resolve(choice)  # PathOutsideWorkspace names the path
    return load_template(operator, choice, ws)


def template_ref(ws: Workspace, operator: str, choice: str | None, text: str | None, save_name: str
                 ) -> tuple[str | None, str | None]:
    """(the config's `template`, the name the edited text must be saved under before a job can use it).

    Unedited text keeps the chosen template (None = the operator's default); edited text becomes `<save_name>.<op>`,
    saved when the job is submitted — a form preview must not write files."""
    choice = (choice or "").strip() or None
    if text is None:
        return choice, None
    text = text.rstrip("\n")
    if choice:
        try:
            if template_text(ws, operator, choice) == text:
                return choice, None
        except (UserError, OSError):
            pass  # a missing, unreadable or refused choice: the edited text is what the job gets
    if text == default_template(operator):
        return None, None
    name = f"{re.sub(r'[^A-Za-z0-9._-]', '-', save_name).strip('.-_') or 'synth'}.{operator}"
    return name, name
