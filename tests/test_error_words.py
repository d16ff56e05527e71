"""Errors a studio user meets read in the page's language (one way: core raises UserError with a code and params,
studio/i18n/<lang>/errors.yaml words it), while core's English message stays what the CLI prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studio.i18n import speaking, strings

ROOT = Path(__file__).resolve().parent.parent
CODE = re.compile(r"""code\s*=\s*"([a-z_]+)"|self\.code\s*=\s*"([a-z_]+)"(?:\s+if\s+\w+\s+else\s+"([a-z_]+)")?""")


def test_every_code_core_raises_is_worded_in_both_languages():
    raised = set()
    for path in (ROOT / "core").rglob("*.py"):
        if path.name == "errors.py" and path.parent.name == "core":  # the docstring's example
            continue
        for m in CODE.finditer(path.read_text(encoding="utf-8")):
            raised.update(c for c in m.groups() if c)
    from core.config.errors import WORDED_TYPES

    raised |= {f"invalid_{t}" for t in WORDED_TYPES}
    assert len(raised) > 40
    for lang in ("en", "zh"):
        missing = sorted(c for c in raised if f"errors.{c}" not in strings(lang))
        assert not missing, f"codes without errors.yaml text in {lang}: {missing}"


@pytest.fixture
def ui(workspace):
    from studio.ui import UIContext

    return UIContext(workspace=workspace)


def test_a_form_problem_pydantic_finds_reads_in_the_page_language(ui, workspace):
    """top_k = 0 on the evaluation form: pydantic's bound, named by the field's label, in the page's words."""
    from core.eval.form import FORM
    from core.forms.form import FormError

    with pytest.raises(FormError) as e:
        FORM.build_job(workspace, {"model": "m", "dataset": "d", "metrics": ["kl"], "top_k": 0})
    assert "top_k" in str(e.value) and "greater than" in str(e.value).lower()  # the CLI's English, as before
    e.value.where = "evaluate"
    with speaking("zh"):
        zh, label = ui.error_text(e.value), ui.t("evaluate.top_k")
    assert zh == f"{label}: 不能小于 1（当前为 0）", zh


def test_refusals_of_paths_data_and_jobs_read_in_the_page_language(ui, workspace):
    from core.data import store
    from core.errors import UserError

    refusals = []
    for attempt in (lambda: workspace.resolve("../elsewhere.jsonl"),
                    lambda: store.import_file(workspace, workspace.root / "missing.jsonl", "x", "alpaca"),
                    lambda: ui.jobs().get("no-such-job"),
                    lambda: store.check_name("bad name!")):
        with pytest.raises(UserError) as e:
            attempt()
        refusals.append(e.value)
    with speaking("zh"):
        zh = [ui.error_text(e) for e in refusals]
    with speaking("en"):
        en = [ui.error_text(e) for e in refusals]
    for e, z, n in zip(refusals, zh, en, strict=True):
        assert e.code and re.search(r"[\u4e00-\u9fff]", z) and not re.search(r"[\u4e00-\u9fff]", n), (e, z, n)
        assert str(workspace.root) not in z  # the server's paths stay out of what a visitor reads
    assert "工作区之外" in zh[0] and "找不到文件" in zh[1] and "no-such-job" in zh[2]
