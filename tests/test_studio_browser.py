"""The studio in a real headless Chromium: every tab opens, the language switches to Chinese and back."""

import pytest

pytestmark = pytest.mark.browser

TABS_EN = ["Start here", "Data", "Models", "Synthesis", "CoT Curation", "Training", "Chat", "Jobs"]
TABS_ZH = ["从这里开始", "数据", "模型", "数据合成", "思维链筛选", "训练", "对话", "任务"]


def test_visit_every_tab_and_switch_language(studio, browser_page, artifacts_dir):
    sp = studio()
    page = browser_page
    page.goto(sp.url)
    page.get_by_role("tab", name="Jobs", exact=True).wait_for()
    for name in TABS_EN:
        page.get_by_role("tab", name=name, exact=True).click()
        assert page.get_by_role("tab", name=name, exact=True).get_attribute("aria-selected") == "true"
    page.screenshot(path=str(artifacts_dir / "studio-en.png"), full_page=True)

    page.get_by_label("中文").check()
    page.get_by_role("tab", name="训练", exact=True).wait_for()
    for name in TABS_ZH:
        page.get_by_role("tab", name=name, exact=True).click()
        assert page.get_by_role("tab", name=name, exact=True).get_attribute("aria-selected") == "true"
    assert "工作区" in page.locator("#eds-footer").inner_text()
    page.screenshot(path=str(artifacts_dir / "studio-zh.png"), full_page=True)

    page.get_by_label("English").check()
    page.get_by_role("tab", name="Training", exact=True).wait_for()
    assert "workspace" in page.locator("#eds-footer").inner_text()


def test_chinese_at_launch(studio, browser_page):
    sp = studio("--lang", "zh")
    browser_page.goto(sp.url)
    browser_page.get_by_role("tab", name="数据合成", exact=True).wait_for()
