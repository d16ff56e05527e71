"""Configs in: an EasyDistill 1.x `cot_eval_api` JSON and an EasyDistill 2.0 YAML pipeline (cot_rvcd_score ->
cot_mix_by_rv_cd) become judge / curate jobs and run through core.cot against the test server; the CLI runs the
`curate` kind from flags like every kind."""

from __future__ import annotations

import json

import pytest
import yaml

from core.config.data_jobs import CurateJob, JudgeJob
from core.config.errors import ConfigError
from core.config.io import load_config_file
from core.config.registry import PipelineJob
from core.cot import curate_job, judge_job
from core.jobs.context import JobContext
from tests.fake_openai_server import FakeOpenAIServer
from tests.test_cot_judge_job import _expected, _rows, scripted_judge


def _ctx(ws, tmp_path, step=None):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    return JobContext("cfg", run, ws, step_name=step)


def test_v1_cot_eval_api_runs_as_a_judge_job(workspace, tmp_path):
    (tmp_path / "cots.json").write_text(json.dumps([{k: r[k] for k in ("instruction", "output")} for r in _rows(8)]))
    with FakeOpenAIServer(answer=scripted_judge) as srv:
        v1 = {"job_type": "cot_eval_api",
              "dataset": {"input_path": "cots.json", "output_path": "scored/cots-scored.json"},
              "inference": {"base_url": srv.base_url, "api_key": "sk-not-real", "temperature": 0.7,
                            "max_new_tokens": 256}}
        (tmp_path / "v1.json").write_text(json.dumps(v1))
        config, notes = load_config_file(tmp_path / "v1.json")
        assert isinstance(config, JudgeJob) and config.metrics == ["rv", "cd", "correctness"]
        assert config.sampling.temperature == 0 and config.sampling.max_new_tokens == 256
        assert any("temperature 0" in n for n in notes)
        judge_job.run(config, _ctx(workspace, tmp_path))
        assert {r.body["temperature"] for r in srv.chat_records()} == {0.0}
    out = json.loads((tmp_path / "scored" / "cots-scored.json").read_text())
    assert [r["instruction"] for r in out] == [f"Question {i}?" for i in range(8)]  # a JSON array, input order
    assert all({k: r[k] for k in ("rv", "cd", "correctness")} == _expected(int(r["instruction"][9:-1])) for r in out)


def test_v2_pipeline_scores_then_mixes(workspace, tmp_path):
    rows = _rows(40)
    (tmp_path / "cot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FakeOpenAIServer(answer=scripted_judge) as srv:
        v2 = {"job_type": "cot_pipeline",
              "backend": {"type": "openai", "base_url": srv.base_url, "model": "fake-model", "max_workers": 4},
              "pipeline": [
                  {"stage": "cot_rvcd_score", "config": {"input_path": "cot.jsonl"}, "output_path": "out/scored"},
                  {"stage": "cot_mix_by_rv_cd", "config": {"cd_bins": [0, 3, 6, 10], "rv_target": "matched",
                                                           "samples_per_bin": 3, "min_correctness": 1,
                                                           "shuffle": True},
                   "output_path": "out/mixed.jsonl"},
              ]}
        (tmp_path / "v2.yaml").write_text(yaml.safe_dump(v2))
        config, notes = load_config_file(tmp_path / "v2.yaml")
        assert isinstance(config, PipelineJob) and [s.job.kind for s in config.steps] == ["judge", "curate"]
        judge, mix = config.steps[0].job, config.steps[1].job
        assert isinstance(mix, CurateJob) and mix.samples_per_bin == 3 and mix.cd_edges == [0, 3, 6, 10]
        assert mix.input == judge.output == str(tmp_path / "out" / "scored.jsonl")
        assert judge.judge.endpoint.concurrency == 4
        assert any("last bin" in n for n in notes) and any("shuffle" in n for n in notes)
        for step in config.steps:
            run = judge_job.run if step.job.kind == "judge" else curate_job.run
            run(step.job, _ctx(workspace, tmp_path, step.name))
    mixed = [json.loads(x) for x in (tmp_path / "out" / "mixed.jsonl").read_text().splitlines()]
    # correct rows (odd n): CD = 3n mod 10 per bin; 3 per bin, closest RV (= n mod 10) to 2 / 5 / 8
    assert len(mixed) == 9 and all(r["correctness"] == 1 for r in mixed)


def test_v2_unknown_stage_is_named(tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({
        "job_type": "x", "backend": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"},
        "pipeline": [{"stage": "cot_teleport", "config": {}, "output_path": "o.jsonl"}]}))
    with pytest.raises(ConfigError, match="cot_teleport"):
        load_config_file(tmp_path / "bad.yaml")


def test_cli_runs_curate_from_flags(workspace, capsys):
    from core.cli.main import main
    from tests.test_cot_mix import _row

    rows = [_row(10 * cd + rv, rv=rv, cd=cd) for cd in (1, 4, 7) for rv in range(10)]
    (workspace.datasets / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["--workspace", str(workspace.root), "run", "--kind", "curate", "--set", "input=scored",
                 "--set", "samples_per_bin=2", "--set", "rv_target=low", "--set", "output=picked"])
    assert code == 0, capsys.readouterr().err
    picked = [json.loads(x) for x in (workspace.datasets / "picked.jsonl").read_text().splitlines()]
    rv = [r["rv"] for r in picked]  # per bin: RV 2 (the target), then RV 1 or 3 (a tie)
    assert len(rv) == 6 and rv.count(2) == 3 and set(rv) <= {1, 2, 3}
