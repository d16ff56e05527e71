"""Errors a studio user meets read in the page's language (one way: core raises UserError with a code and params,
studio/i18n/<lang>/errors.yaml words it), while core's English message stays what the CLI prints."""

from __future__ import annotations

import json
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


# ----------------------------------------------------------------- lines core writes in English (core.said.Said)

SAID_KEY = re.compile(r"""["']((?:errors|models|evaluate|start|data)\.[a-z_]+)["']""")
ZH = re.compile(r"[\u4e00-\u9fff]")


def test_every_line_core_words_by_a_key_has_it_in_both_languages():
    """Row reasons, derive events, evaluation notes, the guided flow's why: each full key core names (a Said's
    code, `errors.row_*` and the like) has a text in English and Chinese."""
    keys = set()
    for path in (ROOT / "core").rglob("*.py"):
        keys.update(SAID_KEY.findall(path.read_text(encoding="utf-8")))
    assert {"errors.row_json", "errors.row_csv_unclosed_more", "models.event_kept", "evaluate.note_kl_estimated",
            "start.why_endpoint", "data.lf_note_num_samples"} <= keys
    for lang in ("en", "zh"):
        missing = sorted(k for k in keys if k not in strings(lang))
        assert not missing, f"keys without text in {lang}: {missing}"


def test_bad_records_read_in_the_page_language(ui, workspace):
    """An import's bad records: the Data tab's message and a refusal list each reason in Chinese on a Chinese page,
    while the CLI's English (str of the RowError, the rejects file) stays as it was."""
    from core.data import store
    from core.data.errors import DataError
    from studio.tabs.data import _import_message

    src = workspace.root / "bad.jsonl"
    src.write_text('{"instruction": "hi", "output": "a"}\n{"instruction": 5}\n{oops\n[1, 2]\n', encoding="utf-8")
    res = store.import_file(workspace, src, "bad", "alpaca")
    assert [str(e) for e in res.errors] == [
        "bad.jsonl:2: 'instruction' must be text, got the number 5 (is the right column mapped to it?)",
        "bad.jsonl:3: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        "bad.jsonl:4: expected a JSON object with named fields, got a list"]
    with speaking("zh"):
        zh = _import_message(ui, res)
    with speaking("en"):
        en = _import_message(ui, res)
    assert "“instruction”必须是文本" in zh and "不是有效的 JSON（第 2 列" in zh and "应为带字段名的 JSON 对象" in zh, zh
    assert "'instruction' must be text" in en and not ZH.search(en)
    with pytest.raises(DataError) as e:
        store.import_file(workspace, src, "bad2", "alpaca", on_error="stop")
    with speaking("zh"):
        refusal = ui.error_text(e.value)
    assert "没有导入任何数据" in refusal and "bad.jsonl:3: 不是有效的 JSON" in refusal, refusal
    assert "must be text" not in refusal


def test_export_lost_counts_and_skipped_reason_in_the_data_tab(ui, workspace):
    """A pair dataset exported as messages keeps only the chosen answer: the Data tab says how many, in the page's
    language, with the first skipped row's reason worded too."""
    from core.config.data_jobs import DataExportJob
    from core.data import store
    from core.data.job import _export
    from core.data.stream import Tracker
    from studio.tabs.data import op_outcome

    rows = [{"id": f"p{i}", "instruction": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(3)]
    rows.append({"id": "empty", "output": "no prompt"})
    store.save_rows(workspace, "pairs", rows, created_by="test")
    res = _export(DataExportJob(input="pairs", format="messages"), workspace, Tracker())
    assert res["lost"] == {"rejected": 3} and res["skipped"] == 1
    with speaking("zh"):
        _, zh, _ = op_outcome(ui, "data_export", res)
    with speaking("en"):
        _, en, _ = op_outcome(ui, "data_export", res)
    assert "3 个偏好对只写入了 chosen 回答" in zh and "没有指令也没有 messages" in zh, zh
    assert "3 pair(s) written with the chosen answer only (messages holds one answer" in en, en
    assert json.loads(json.dumps(res))["lost"] == {"rejected": 3}  # what the job's result file holds


def test_dataset_info_import_from_the_data_tab(ui, workspace):
    """The Data tab lists a workspace dataset_info.json's entries and imports one through core, confined to the
    workspace; the message is the import's, in the page's language."""
    from studio.tabs.data import lf_entries, lf_import

    folder = workspace.root / "lf"
    folder.mkdir()
    (folder / "qa.json").write_text(json.dumps([{"instruction": "q1", "output": "a1"}, {"instruction": 7},
                                                {"instruction": "q3", "output": "a3"}]), encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps({
        "my qa": {"file_name": "qa.json", "num_samples": 2},
        "other": {"file_name": "qa.json", "columns": {"prompt": "instruction", "response": "output"}}}),
        encoding="utf-8")
    with speaking("zh"):
        info, picker, name, msg = lf_entries(ui, "lf")
        assert picker["choices"] == ["my qa", "other"] and name == "my-qa" and "lf/dataset_info.json" in msg
        text, made = lf_import(ui, info, "my qa", name, "skip", False)
    assert made == "my-qa" and (workspace.datasets / "my-qa.jsonl").is_file()
    assert "qa.json:1 （第 2 条记录）: “instruction”必须是文本" in text, text
    assert "num_samples 2：文件中的每一行" in text, text
    with speaking("zh"):
        refused = lf_entries(ui, "../outside")[3]
        missing = lf_import(ui, "", None, "", "skip", False)[0]
    assert "工作区之外" in refused and ZH.search(missing)


def test_derive_report_flow_why_and_evaluation_notes_read_in_chinese(ui, workspace):
    """The Models tab's derive report and job events, the Start tab's why ② trains by SFT, an evaluation's notes:
    English in core (CLI, logs, results.json), worded by code on a Chinese page."""
    from core.config.base import BackendSpec
    from core.config.train import EvaluateJob
    from core.eval.job import Row, make_plan
    from core.flow import FlowPlan, logit_kd_possible
    from core.models.derive import DeriveReport
    from core.said import Said, said_dict, said_fields
    from studio.tabs.models import report_text

    report = DeriveReport(teacher="t", output="s", strategy="head_tail", kept_layers=[0, 3], teacher_layers=4,
                          params_before=2_000_000, params_after=1_000_000, teacher_ce=1.0, student_ce=3.25,
                          student_kl=2.5, eval_tokens=120, vocab_size=1000)
    said = Said("kept layers [0, 3] of 4; parameters 2,000,000 -> 1,000,000", "models.event_kept",
                {"kept": [0, 3], "total": 4, "before": "2,000,000", "after": "1,000,000"})
    event = json.loads(json.dumps({"event": said, **said_fields(said)}))  # a derive job's line in metrics.jsonl
    api = FlowPlan(BackendSpec(type="openai", model="m", endpoint={"base_url": "http://127.0.0.1:9/v1"}), "s", "d")
    _, why = logit_kd_possible(api, workspace)
    config = EvaluateJob(model=BackendSpec(model="m"), dataset="d", metrics=["exact_match"])
    rows = [Row("a", {}, [], "q", "1"), Row("b", {}, [], "q", None)]
    note = Said.of(json.loads(json.dumps(said_dict(make_plan(config, rows).notes[0]))))
    assert str(note) == "1 row(s) have no gold answer and are not checked"  # results.json's English
    with speaking("zh"):
        zh = [report_text(ui, report), ui.said(Said(event["event"], event["event_code"], event["event_params"])),
              ui.t("start.train_submitted", model="s", why=ui.said(why)), ui.said(note)]
    assert zh[0].startswith("保留了 4 层中的 2 层 [0, 3]（首尾保留") and "学生 CE 3.25" in zh[0], zh[0]
    assert zh[1] == "保留第 [0, 3] 层（共 4 层）；参数量 2,000,000 → 1,000,000", zh[1]
    assert "只能做黑盒训练（SFT）" in zh[2] and zh[3] == "1 行没有标准答案，未做检查"
    assert "SFT" in why and not ZH.search(str(why)) and "kept 2/4 layers" in report.summary()


LF_REFUSALS = {  # entry -> (its dataset_info.json attributes, the code its refusal carries)
    "hub": ({"hf_hub_url": "someone/data"}, "lf_hub"),
    "nofile": ({"formatting": "alpaca"}, "lf_no_file_name"),
    "fmt": ({"file_name": "qa.json", "formatting": "parquet"}, "lf_formatting"),
    "cols": ({"file_name": "qa.json", "columns": ["instruction"]}, "lf_columns_object"),
    "tags": ({"file_name": "qa.json", "formatting": "sharegpt", "tags": "role"}, "lf_tags_object"),
    "gone": ({"file_name": "gone.json"}, "lf_file_not_found"),
    "dotdot": ({"file_name": "../../etc/passwd"}, "lf_path_outside"),
    "arrow": ({"file_name": "qa.arrow"}, "lf_file_type"),
    "kto": ({"file_name": "qa.json", "columns": {"prompt": "instruction", "kto_tag": "label"}}, "lf_kto"),
    "vision": ({"file_name": "qa.json", "columns": {"prompt": "instruction", "images": "pics"}}, "lf_media"),
    "ranked": ({"file_name": "qa.json", "ranking": True}, "lf_ranking_columns"),
    "sg": ({"file_name": "qa.json", "formatting": "sharegpt", "columns": {"prompt": "q"}}, "lf_no_messages"),
    "bare": ({"file_name": "qa.json", "columns": {"response": "output"}}, "lf_no_prompt"),
}


def test_dataset_info_refusals_read_in_the_page_language(ui, workspace, capsys):
    """Each LLaMA-Factory entry the import refuses carries a code: the Data tab words it in Chinese on a Chinese
    page (naming the entry), in English as the CLI prints it; the CLI's message stays English."""
    from core.cli.main import main as cli
    from core.data.errors import DataError
    from core.data.llamafactory_import import load_entry, read_dataset_info

    folder = workspace.root / "lf"
    folder.mkdir()
    (folder / "qa.json").write_text(json.dumps([{"instruction": "q", "output": "a"}]), encoding="utf-8")
    (folder / "qa.arrow").write_bytes(b"ARROW1")
    info = folder / "dataset_info.json"
    info.write_text(json.dumps({k: attrs for k, (attrs, _) in LF_REFUSALS.items()}), encoding="utf-8")
    (workspace.root / "odd").mkdir()
    (workspace.root / "odd" / "dataset_info.json").write_text("[1, 2]", encoding="utf-8")
    refusals = {}
    for entry, (_, code) in LF_REFUSALS.items():
        with pytest.raises(DataError) as e:
            load_entry("lf", entry, ws=workspace, confined=True)
        assert e.value.code == code, (entry, str(e.value))
        refusals[entry] = e.value
    for attempt, code in ((lambda: load_entry("lf", None, ws=workspace, confined=True), "lf_which_entry"),
                          (lambda: load_entry("lf", "absent", ws=workspace, confined=True), "lf_no_entry"),
                          (lambda: read_dataset_info(workspace.root / "odd", ws=workspace, confined=True),
                           "lf_info_shape"),
                          (lambda: read_dataset_info(workspace.root / "none", ws=workspace, confined=True),
                           "lf_info_not_found")):
        with pytest.raises(DataError) as e:
            attempt()
        assert e.value.code == code, str(e.value)
        refusals[code] = e.value
    for key, e in refusals.items():
        with speaking("zh"):
            zh = ui.error_text(e)
        with speaking("en"):
            en = ui.error_text(e)
        assert ZH.search(zh) and not ZH.search(str(e)) and str(workspace.root) not in zh, (key, zh)
        assert en == str(e) or e.code == "lf_path_outside", (en, str(e))  # the CLI's words, on an English page
        if key in LF_REFUSALS:
            assert f"条目“{key}”" in zh, zh
    with speaking("zh"):
        assert ui.error_text(refusals["kto"]).startswith("条目“kto”是 KTO 数据（kto_tag“label”）")
        assert "“lf/../../etc/passwd”在工作区之外" in ui.error_text(refusals["dotdot"])
    assert cli(["--workspace", str(workspace.root), "data", "import", str(info), "--entry", "vision"]) == 2
    err = capsys.readouterr().err
    assert "entry 'vision' has images: the studio imports text data only" in err and not ZH.search(err), err


def test_an_error_param_named_key_or_lang_is_worded_not_a_crash(ui):
    """Core's params reach the page's text as format fields: `key` and `lang` are names a code may use (they were
    the text function's own argument names, and a param so named raised TypeError instead of showing the error)."""
    from studio.i18n import t

    assert t("chat.no_model", "zh", key="k", lang="x") == t("chat.no_model", "zh")
    with speaking("zh"):
        assert ui.t("chat.no_model", key="k") == t("chat.no_model", "zh")


def test_json_nested_too_deeply_or_broken_reads_in_the_page_language(ui, workspace):
    """A .json whose nesting outruns the parser (an object, or a record of an array) or an array with a broken
    record is refused with its file (and record) named, in the page's language."""
    from core.data import store
    from core.data.errors import DataError

    files = {"deep-object.json": '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}",
             "deep-array.json": "[" * 200_000 + "]" * 200_000,
             "broken-array.json": '[{"instruction": "a", "output": "b"},\n {"instruction": oops}]'}
    said = {}
    for name, text in files.items():
        (workspace.root / name).write_text(text, encoding="utf-8")
        with pytest.raises(DataError) as e:
            store.import_file(workspace, workspace.root / name, name.split(".")[0], "alpaca", on_error="stop")
        assert e.value.code, f"{name}: {e.value} has no code"
        with speaking("zh"):
            said[name] = ui.error_text(e.value)
    assert "JSON 嵌套过深" in said["deep-object.json"], said
    assert "数组的第 1 条记录（第 1 行）嵌套过深" in said["deep-array.json"], said
    assert "第 2 行第 18 列不是有效的 JSON（数组的第 2 条记录）" in said["broken-array.json"], said
    assert all(name in text for name, text in said.items())
