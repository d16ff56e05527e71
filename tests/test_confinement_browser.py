"""In the browser: a dataset that is a link out of the workspace is refused in the Data tab with the link named (and
nothing of the outside file shown); an upload over --max-upload-size, and one a proxy in front refuses with its own
"413", are each answered with words that say what to do, in the page's language."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.browser

SECRET = "SECRET-ROW-OUTSIDE"


def _upload(page, path) -> None:
    page.locator("#data-upload input[type=file]").set_input_files(str(path))


def test_link_refused_and_upload_limits_worded(studio, browser_page, tmp_path):
    ws = tmp_path / "ws"
    (ws / "datasets").mkdir(parents=True)
    outside = tmp_path / "outside.jsonl"
    outside.write_text(json.dumps({"instruction": SECRET, "output": "x"}) + "\n", encoding="utf-8")
    os.symlink(outside, ws / "datasets" / "evil.jsonl")
    big, small = tmp_path / "big.jsonl", tmp_path / "small.jsonl"
    big.write_text(json.dumps({"instruction": "q" * 3000, "output": "a"}) + "\n", encoding="utf-8")
    small.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n", encoding="utf-8")
    sp = studio("--max-upload-size", "1kb")
    page = browser_page
    page.goto(sp.url)
    page.get_by_role("tab", name="Data", exact=True).click()

    page.locator("#data-dataset input").click()
    page.get_by_role("option", name="evil", exact=True).click()
    page.wait_for_selector("#data-info:has-text('is a link that leads outside the workspace')")
    assert "datasets/evil.jsonl" in page.locator("#data-info").inner_text()
    assert SECRET not in page.content()

    _upload(page, big)  # over our limit: refused in the page, before sending
    page.get_by_text("This file is larger than 1 KB").first.wait_for()
    assert "import it by path" in page.content()

    # A proxy in front with a lower limit answers 413 with its own page: the toast says what happened and what to do.
    page.route("**/gradio_api/upload*", lambda route: route.fulfill(
        status=413, content_type="text/html", body="<html><center><h1>413 Request Entity Too Large</h1></center>"
                                                   "<hr><center>nginx</center></html>"))
    _upload(page, small)
    page.get_by_text("The proxy in front of the studio refused this upload").first.wait_for()
    assert "<center>" not in page.locator("body").inner_text()

    page.unroute("**/gradio_api/upload*")
    page.locator("#eds-lang").get_by_text("中文").click()  # the page loads again, in Chinese
    page.get_by_role("tab", name="数据", exact=True).click()
    _upload(page, big)
    page.get_by_text("文件超过 1 KB").first.wait_for()
