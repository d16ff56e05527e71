"""The CoT Curation tab's forms (core.cot.form): judge and curate values → confined jobs with errors naming the field,
and back; the RV target / CD edges / teachers texts; student-size presets; the live preview and a heatmap cell's
rows (core.cot.explore) on a scored dataset."""

from __future__ import annotations

import json

import pytest

from core.config.data_jobs import CurateJob, JudgeJob
from core.cot.form import (
    CURATE_FORM,
    JUDGE_FORM,
    output_dataset,
    parse_edges,
    parse_rv_target,
    values_for_size,
)
from core.cot.sizes import STUDENT_SIZES
from core.endpoints import ENDPOINT_PREFIX
from core.forms.form import FormError
from core.workspace import PathOutsideWorkspace

JUDGE = {"input": "traces", "judge": "qwen", "backend": "transformers", "metrics": ["rv", "cd"], "answer_field": "",
         "rescore": False, "retry_rejects": False, "limit": 0, "max_new_tokens": 256, "output": "", "name": ""}


def _curate(**kw):
    return {**CURATE_FORM.defaults(), "input": "scored", **kw}


def test_judge_form_builds_a_job_and_round_trips(workspace):
    job = JUDGE_FORM.build_job(workspace, JUDGE)
    assert isinstance(job, JudgeJob)
    assert job.judge.type == "transformers" and job.judge.model == "qwen"
    assert job.metrics == ["rv", "cd"] and job.limit is None and job.answer_field is None
    assert job.sampling.max_new_tokens == 256 and job.sampling.temperature == 0.0  # the judge's greedy default kept
    assert job.name == "judge traces"
    vllm = JUDGE_FORM.build_job(workspace, {**JUDGE, "backend": "vllm", "limit": 5, "answer_field": "answer"})
    assert vllm.judge.type == "vllm" and vllm.limit == 5 and vllm.answer_field == "answer"
    values = JUDGE_FORM.values_of(vllm, workspace)
    assert values["backend"] == "vllm" and values["judge"] == "qwen" and values["max_new_tokens"] == 256
    assert JUDGE_FORM.build_job(workspace, values).model_dump() == vllm.model_dump()


def test_judge_form_takes_a_registered_endpoint(workspace):
    from core.endpoints import EndpointEntry, save_endpoint

    save_endpoint(workspace, EndpointEntry(name="qwq", base_url="http://127.0.0.1:9/v1", model="QwQ-32B",
                                           api_key_env="QWQ_KEY"))
    job = JUDGE_FORM.build_job(workspace, {**JUDGE, "judge": f"{ENDPOINT_PREFIX}qwq"})
    assert job.judge.type == "openai" and job.judge.endpoint.base_url == "http://127.0.0.1:9/v1"
    assert job.judge.endpoint.api_key_env == "QWQ_KEY"
    assert JUDGE_FORM.values_of(job, workspace)["judge"] == f"{ENDPOINT_PREFIX}qwq"


def test_judge_form_errors_name_the_field(workspace, tmp_path):
    with pytest.raises(FormError, match="^input"):
        JUDGE_FORM.build_job(workspace, {**JUDGE, "input": ""})
    with pytest.raises(FormError, match="^judge"):
        JUDGE_FORM.build_job(workspace, {**JUDGE, "judge": " "})
    with pytest.raises(FormError, match="metrics"):
        JUDGE_FORM.build_job(workspace, {**JUDGE, "metrics": []})
    with pytest.raises(FormError, match="max_new_tokens"):
        JUDGE_FORM.build_job(workspace, {**JUDGE, "max_new_tokens": 0})
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text("{}\n")
    with pytest.raises(PathOutsideWorkspace):
        JUDGE_FORM.build_job(workspace, {**JUDGE, "input": str(outside)})


def test_curate_form_at_rest_keeps_correct_traces_only(workspace):
    job = CURATE_FORM.build_job(workspace, _curate())
    assert isinstance(job, CurateJob)
    assert job.min_correctness == 1 and job.rv_min is job.rv_max is job.cd_min is job.cd_max is None
    assert job.teachers is None and job.min_response_chars is None and job.max_response_chars is None
    assert job.samples_per_bin is None and job.cd_edges == [0, 3, 6, 10] and job.rv_target == "matched"
    assert job.export == "rows" and job.name == "curate scored"
    assert CURATE_FORM.build_job(workspace, _curate(min_correctness=0)).min_correctness is None


def test_curate_form_filters_mixer_and_round_trip(workspace):
    values = _curate(rv_min=3.0, rv_max=5.0, cd_min=4, cd_max=4, teachers=" QwQ-32B, DeepSeek-R1 ,",
                     min_response_chars=10, max_response_chars=0, samples_per_bin=50, cd_edges="0, 4, 10",
                     rv_target="low, 6", one_per_question=True, seed=3, export="system2", output="mine")
    job = CURATE_FORM.build_job(workspace, values)
    assert (job.rv_min, job.rv_max, job.cd_min, job.cd_max) == (3, 5, 4, 4)
    assert job.teachers == ["QwQ-32B", "DeepSeek-R1"] and job.min_response_chars == 10
    assert job.max_response_chars is None and job.samples_per_bin == 50
    assert job.cd_edges == [0, 4, 10] and job.rv_target == ["low", 6.0] and job.one_per_question
    assert job.export == "system2" and job.output == "mine" and output_dataset(workspace, job) == "mine"
    back = CURATE_FORM.values_of(job, workspace)
    assert back["cd_edges"] == "0, 4, 10" and back["rv_target"] == "low, 6"
    assert back["teachers"] == "QwQ-32B, DeepSeek-R1" and back["max_response_chars"] == 0
    assert CURATE_FORM.build_job(workspace, back).model_dump() == job.model_dump()
    rest = CURATE_FORM.values_of(CURATE_FORM.build_job(workspace, _curate()), workspace)
    assert (rest["rv_min"], rest["rv_max"], rest["cd_min"], rest["cd_max"]) == (0, 9, 0, 9)
    assert output_dataset(workspace, CURATE_FORM.build_job(workspace, _curate())) == "scored-curated"


@pytest.mark.parametrize("text,n,expected", [
    ("matched", 3, "matched"), (" High ", 3, "high"), ("4.5", 3, 4.5), ("2, 5, 8", 3, [2.0, 5.0, 8.0]),
    ("[low, medium, high]", 3, ["low", "medium", "high"]), ("", 3, "matched"), (7, 2, 7.0),
])
def test_rv_target_text(text, n, expected):
    assert parse_rv_target(text, n) == expected


@pytest.mark.parametrize("text,message", [
    ("2, 5", "2 targets for 3 CD bins"), ("verbose", "neither a number"), ("12", "0–9"),
    ("low, matched, high", "neither a number"),
])
def test_rv_target_errors_name_the_field(workspace, text, message):
    with pytest.raises(FormError, match=message) as e:
        CURATE_FORM.build_job(workspace, _curate(rv_target=text))
    assert e.value.field == "rv_target"


def test_cd_edges_text(workspace):
    assert parse_edges("0 3 6 10") == [0, 3, 6, 10] and parse_edges("[0, 5, 10]") == [0, 5, 10]
    for bad, message in (("0, three", "numbers"), ("5", "two edges"), ("0, 6, 3", "increase")):
        with pytest.raises(FormError, match=message) as e:
            CURATE_FORM.build_job(workspace, _curate(cd_edges=bad))
        assert e.value.field == "cd_edges"


def test_cross_field_rules_and_missing_input(workspace):
    with pytest.raises(FormError, match="rv_min"):
        CURATE_FORM.build_job(workspace, _curate(rv_min=6, rv_max=3))
    with pytest.raises(FormError, match="^input"):
        CURATE_FORM.build_job(workspace, _curate(input=""))
    spec = CURATE_FORM.spec(workspace, _curate(input="", rv_min=2))  # the preview needs no input or output
    assert spec.rv_min == 2 and not hasattr(spec, "output")


def test_student_size_presets_fill_the_form(workspace):
    assert "1.5B" in STUDENT_SIZES
    v = values_for_size("1.5B")  # ThoughtX: correct, RV 3-5, CD 4
    assert (v["min_correctness"], v["rv_min"], v["rv_max"], v["cd_min"], v["cd_max"]) == (1, 3, 5, 4, 4)
    job = CURATE_FORM.build_job(workspace, _curate(**v))
    assert (job.rv_min, job.rv_max, job.cd_min, job.cd_max, job.min_correctness) == (3, 5, 4, 4, 1)
    for size in STUDENT_SIZES:
        CURATE_FORM.build_job(workspace, _curate(**values_for_size(size)))
    with pytest.raises(FormError, match="size"):
        values_for_size("70B")


def _scored(workspace, n=40):
    rows = [{"id": f"r{i}", "question_id": f"q{i // 2}", "instruction": f"What is {i} + 1?", "rv": i % 10,
             "cd": (i // 10) * 3, "correctness": int(i % 7 != 0), "teacher": "A" if i % 3 else "B",
             "thought": f"add one to {i}", "solution": f"{i + 1}", "output": f"<think>add one to {i}</think>{i + 1}"}
            for i in range(n)]
    (workspace.datasets / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_live_preview_and_cell_rows(workspace):
    from core.cot import explore

    _scored(workspace)
    everything = CURATE_FORM.spec(workspace, _curate(min_correctness=0))
    p = explore.preview(workspace, "scored", everything)
    assert p.counts["total"] == p.counts["selected"] == 40 and p.scored == 40
    assert p.teachers == {"A": 26, "B": 14}
    narrow = CURATE_FORM.spec(workspace, _curate(rv_min=3, rv_max=5, cd_min=3, cd_max=3))
    q = explore.preview(workspace, "scored", narrow)
    # rows 10..19 have CD 3; RV 3..5 → r13, r14, r15, of which r14 is incorrect (i % 7 == 0)
    assert q.counts["selected"] == 2 and q.stats["after"]["rv_cd_matrix"][3][3] == 1
    assert q.stats["after"]["rv_cd_matrix"][4][3] == 0 and q.stats["before"]["rv_cd_matrix"][4][3] == 1
    assert q.stats["before"]["rows"] == 40 and q.counts["dropped_by"]["rv"] == 28
    rows = explore.cell_rows(workspace, "scored", narrow, rv=3, cd=3)
    assert [r["id"] for r in rows] == ["r13"]
    assert explore.cell_rows(workspace, "scored", narrow, rv=4, cd=3) == []
    assert [r["id"] for r in explore.cell_rows(workspace, "scored", narrow, rv=4, cd=3, within="all")] == ["r14"]
    chat = explore.trace_chat(rows[0])
    assert chat[0] == {"role": "user", "content": "What is 13 + 1?"}
    assert chat[1]["content"] == "<think>\nadd one to 13\n</think>\n\n14"
    assert explore.row_label(rows[0]).startswith("r13 · A · RV 3 · CD 3")


def test_preview_follows_an_edited_dataset_and_stays_confined(workspace, tmp_path):
    from core.cot import explore

    rows = _scored(workspace, 20)
    spec = CURATE_FORM.spec(workspace, _curate(min_correctness=0))
    assert explore.preview(workspace, "scored", spec).counts["total"] == 20
    (workspace.datasets / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    assert explore.preview(workspace, "scored", spec).counts["total"] == 5
    outside = tmp_path / "outside.jsonl"
    outside.write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(PathOutsideWorkspace):
        explore.preview(workspace, str(outside), spec)


def test_the_thoughtx_preset_loads_into_the_curate_form(workspace):
    from core.forms.loading import config_from_file
    from core.presets import BUNDLED

    job = config_from_file(str(BUNDLED / "thoughtx-curation.yaml"))
    assert CURATE_FORM.accepts(job) and not JUDGE_FORM.accepts(job)
    values = CURATE_FORM.values_of(job, workspace)
    assert (values["rv_min"], values["rv_max"], values["cd_min"], values["cd_max"]) == (3, 5, 4, 4)
    assert values["export"] == "system2" and values["input"] == "omnithought"
    assert {k: v for k, v in values.items() if k in values_for_size("1.5B")} == values_for_size("1.5B")
    assert CURATE_FORM.build_job(workspace, values).model_dump() == job.model_dump()
