"""The page's language in a real browser (issue 18.1): after switching, no tab shows an English sentence (or, the
other way, a Chinese one), a handler's message and a core error read in the new language, and a new load keeps it.

"An English sentence": a run of three or more ASCII words on one line of what the page shows (visible text and
placeholders); proper names and technical words (ALLOWED) are not words. Gradio's own words (upload areas, the footer)
are checked too: the switch loads the page again, and they follow it.
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.browser

TABS = {"en": ["Start here", "Data", "Models", "Synthesis", "CoT Curation", "Training", "Chat", "Jobs"],
        "zh": ["从这里开始", "数据", "模型", "数据合成", "思维链筛选", "训练", "对话", "任务"]}
PANELS = ["start", "data", "models", "synthesis", "curation", "training", "chat", "jobs"]  # #eds-tab-<id>
SWITCH = {"en": "English", "zh": "中文"}
# proper names and technical words a Chinese page keeps (models, formats, methods, libraries, scores)
ALLOWED = {"easydistill", "studio", "yaml", "json", "jsonl", "csv", "tsv", "parquet", "lora", "kd", "sft", "dpo",
           "cogpo", "grpo", "rloo", "api", "openai", "gpu", "cpu", "vllm", "transformers", "hub", "llm", "cot", "rv",
           "cd", "kl", "jsd", "ce", "id", "url", "cli", "qwen", "distilqwen", "thoughtx", "omnithought", "alpaca",
           "sharegpt", "llama-factory", "llamafactory", "top-p", "top-k", "auto", "system-1", "system-2"}
WORD = re.compile(r"^[(\"'“‘]*([A-Za-z][A-Za-z'’-]*)[.,:;!?)\"'”’…]*$")
CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]+")


def english_sentences(text: str) -> list[str]:
    """Runs of >= 3 ASCII words (ALLOWED words break a run) on one line."""
    found = []
    for line in text.splitlines():
        run: list[str] = []
        for tok in [*line.split(), ""]:
            m = WORD.match(tok)
            if m and m.group(1).lower() not in ALLOWED:
                run.append(tok)
                continue
            if len(run) >= 3:
                found.append(" ".join(run))
            run = []
    return found


def chinese_text(text: str) -> list[str]:
    return [s for s in CJK.findall(text) if s not in ("中文", "语言")]


def page_text(page) -> str:
    """What the visible page shows: its text and placeholders."""
    text = page.locator("body").inner_text()
    return text + "\n" + "\n".join(p for p in page.locator("[placeholder]:visible").evaluate_all(
        "els => els.map(e => e.placeholder)") if p)


def foreign_on_tabs(page, lang: str) -> dict[str, list[str]]:
    """{tab: foreign sentences} over every tab as it opens (what its closed sections hold, and every hidden
    component, is checked without a browser: test_page_language.py)."""
    out = {}
    for name, panel in zip(TABS[lang], PANELS, strict=True):
        page.get_by_role("tab", name=name, exact=True).click()
        shown = page.locator(f"#eds-tab-{panel}")
        shown.wait_for()
        before, deadline = "", time.time() + 15
        while time.time() < deadline:  # rendered: its text stopped changing
            now = shown.inner_text()
            if now and now == before:
                break
            before = now
            time.sleep(0.4)
        text = page_text(page)
        bad = sorted(set(english_sentences(text) if lang == "zh" else chinese_text(text)))
        if bad:
            out[name] = bad
    return out


def switch_to(page, lang: str) -> None:
    """Click the language switch; the page loads again in `lang`."""
    with page.expect_navigation(timeout=120_000):
        page.get_by_label(SWITCH[lang]).click()
    page.get_by_role("tab", name=TABS[lang][-1], exact=True).wait_for(timeout=120_000)
    assert page.get_by_label(SWITCH[lang]).is_checked()


@pytest.fixture(scope="module")
def zh_studio(tmp_path_factory):
    """One studio for the module, launched in Chinese; a page asks for English with `?lang=en`."""
    from tests.browser_support import start_studio

    sp = start_studio(tmp_path_factory.mktemp("lang-browser") / "ws", "--lang", "zh")
    yield sp
    sp.stop()


def test_chinese_launch_switched_to_english_and_kept(zh_studio, browser_page):
    page = browser_page
    page.goto(zh_studio.url)
    page.get_by_role("tab", name="任务", exact=True).wait_for()
    switch_to(page, "en")
    assert not foreign_on_tabs(page, "en")
    page.get_by_role("tab", name="Jobs", exact=True).click()
    page.locator("#jobs-stop").click()
    page.wait_for_function("document.querySelector('#jobs-message').innerText.includes('first')", timeout=60_000)
    assert not chinese_text(page.locator("#jobs-message").inner_text())

    page.goto(zh_studio.url)  # a new load without ?lang= keeps the page's last choice (the switch's cookie)
    page.get_by_role("tab", name="Training", exact=True).wait_for(timeout=120_000)
    assert page.get_by_label("English").is_checked()


def test_english_page_switched_to_chinese_and_its_handlers(zh_studio, browser_page, artifacts_dir):
    page = browser_page
    page.goto(zh_studio.url + "/?lang=en")  # the address chooses the page's language
    page.get_by_role("tab", name="Jobs", exact=True).wait_for(timeout=120_000)
    assert page.get_by_label("English").is_checked()
    switch_to(page, "zh")
    assert not foreign_on_tabs(page, "zh")

    # a handler's own message, and a core refusal (a path outside the workspace) worded from its code
    page.get_by_role("tab", name="任务", exact=True).click()
    page.locator("#jobs-stop").click()
    page.wait_for_function("document.querySelector('#jobs-message').innerText.includes('请先')", timeout=60_000)
    page.get_by_role("tab", name="数据", exact=True).click()
    page.get_by_label("……或工作区内的路径").fill("../outside.jsonl")
    page.locator("#data-load-path").click()
    page.wait_for_function("document.querySelector('#data-detected').innerText.includes('工作区之外')",
                           timeout=60_000)
    assert not english_sentences(page.locator("#data-detected").inner_text())
    page.screenshot(path=str(artifacts_dir / "language-zh.png"), full_page=True)

