"""RV/CD mixer and range filters on hand-made rows with known scores: bins (CD = 10 in the last one), each RV target
policy, samples per bin, ties, one trace per question, seeds; the preview counts and plot statistics; the curate job
writing a selection as System-2 / System-1 SFT rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from core.config.data_jobs import CurateJob, CurateSpec
from core.cot import curate_job
from core.cot.mix import cd_bins, frame_from_rows, preview, rv_targets, score_stats, select
from core.cot.sft import sft_row
from core.data.io import write_records
from core.jobs.context import JobContext


def _row(i, rv, cd, ok=1, q=None, teacher="T1", text="x"):
    return {"id": f"r{i}", "question_id": q or f"q{i}", "instruction": f"Q{i}", "rv": rv, "cd": cd,
            "correctness": ok, "teacher": teacher, "output": f"<think>{text}</think> A{i}"}


def _ids(frame, sel) -> list[str]:
    return frame["id"].to_numpy()[sel.index].tolist()


def test_cd_bins_last_edge_inclusive():
    cd = np.array([0, 2.9, 3, 5.99, 6, 9, 10, 10.5, -1, np.nan])
    assert cd_bins(cd, [0, 3, 6, 10]).tolist() == [0, 0, 1, 1, 2, 2, 2, -1, -1, -1]
    assert cd_bins(np.array([4.0, 5.0]), [4, 5]).tolist() == [0, 0]
    many = list(range(21))  # more edges than the comparison path takes: the binary search gives the same bins
    assert cd_bins(np.array([0, 5.5, 19.99, 20, 21, np.nan]), many).tolist() == [0, 5, 19, 19, -1, -1]


@pytest.mark.parametrize("target,n,expected", [
    ("matched", 3, [2, 5, 8]), ("matched", 4, [2, 4, 6, 8]), ("matched", 1, [5]), ("low", 3, [2, 2, 2]),
    ("medium", 2, [5, 5]), ("high", 3, [8, 8, 8]), (4.5, 2, [4.5, 4.5]), (["low", 6, "high"], 3, [2, 6, 8]),
])
def test_rv_target_policies_stay_on_the_0_9_scale(target, n, expected):
    assert rv_targets(target, n).tolist() == expected


def test_samples_per_bin_closest_rv_first_and_ties_seeded():
    rows = [_row(i, rv=i, cd=1) for i in range(10)]  # bin 0, RV 0..9
    rows += [_row(10 + i, rv=i, cd=10) for i in range(10)]  # CD = 10: last bin (target 8 when matched)
    frame = frame_from_rows(rows)
    sel = select(frame, CurateSpec(samples_per_bin=3, min_correctness=None))
    assert sorted(frame["rv"].to_numpy()[sel.index].tolist()) == [1, 2, 3, 7, 8, 9]
    assert [b["available"] for b in sel.bins] == [10, 0, 10] and [b["selected"] for b in sel.bins] == [3, 0, 3]
    assert sel.bins[2]["bin"] == "[6, 10]"

    # k = 2 in bin 0 with target 2: RV 2, then one of RV 1 / RV 3 (a tie), chosen by the seed.
    spec = dict(samples_per_bin=2, min_correctness=None, cd_max=5, rv_target="low")
    picks = {seed: tuple(_ids(frame, select(frame, CurateSpec(seed=seed, **spec)))) for seed in range(12)}
    assert all("r2" in p and len(p) == 2 for p in picks.values())
    assert {p for v in picks.values() for p in v} == {"r1", "r2", "r3"}, "ties are broken both ways across seeds"
    assert all(tuple(_ids(frame, select(frame, CurateSpec(seed=s, **spec)))) == picks[s] for s in (0, 5))


@pytest.mark.parametrize("target,expected_rv", [("low", [2, 2, 2]), ("high", [8, 8, 8]), (3, [3, 3, 3]),
                                                ("matched", [2, 5, 8]), ([0, "medium", 9], [0, 5, 9])])
def test_each_rv_policy_picks_its_target_per_bin(target, expected_rv):
    rows = [_row(10 * cd + rv, rv=rv, cd=cd) for cd in (1, 4, 7) for rv in range(10)]
    frame = frame_from_rows(rows)
    sel = select(frame, CurateSpec(samples_per_bin=1, rv_target=target))
    got = frame.iloc[sel.index].sort_values("cd")["rv"].tolist()
    assert got == expected_rv


def test_one_trace_per_question():
    rows = [
        _row(0, rv=2, cd=1, q="A"), _row(1, rv=7, cd=1, q="A"), _row(2, rv=6, cd=8, q="A"),  # A: r0 fits best
        _row(3, rv=5, cd=4, q="B"), _row(4, rv=5, cd=4, q="B"),  # B: identical fit, one kept (seeded)
        _row(5, rv=9, cd=9, q="C"),
    ]
    frame = frame_from_rows(rows)
    sel = select(frame, CurateSpec(one_per_question=True))
    ids = _ids(frame, sel)
    assert len(ids) == 3 and "r0" in ids and "r5" in ids and len({"r3", "r4"} & set(ids)) == 1
    seen = {tuple(_ids(frame, select(frame, CurateSpec(one_per_question=True, seed=s)))) for s in range(10)}
    assert {i for s in seen for i in s} & {"r3", "r4"} == {"r3", "r4"}
    # Without the flag both B traces stay; with a per-bin cap the dedupe happens first.
    assert len(select(frame, CurateSpec(samples_per_bin=5)).index) == 6
    assert len(select(frame, CurateSpec(samples_per_bin=5, one_per_question=True)).index) == 3


def test_filters_alone_keep_every_passing_row():
    rows = [_row(0, 4, 4), _row(1, 3, 4), _row(2, 5, 4), _row(3, 4, 4, ok=0), _row(4, 6, 4), _row(5, 4, 5),
            _row(6, None, 4), _row(7, 4, None), _row(8, 4, 4, ok=None), _row(9, 4, 4, teacher="T2", text="y" * 500)]
    frame = frame_from_rows(rows)
    thoughtx = CurateSpec(rv_min=3, rv_max=5, cd_min=4, cd_max=4)  # correct, RV 3-5, CD 4 (1.5B student)
    assert _ids(frame, select(frame, thoughtx)) == ["r0", "r1", "r2", "r9"]
    assert _ids(frame, select(frame, CurateSpec(min_correctness=None))) == [f"r{i}" for i in range(10)]
    assert _ids(frame, select(frame, CurateSpec(rv_min=3, rv_max=5, cd_min=4, cd_max=4, teachers=["T2"]))) == ["r9"]
    assert _ids(frame, select(frame, CurateSpec(min_correctness=None, max_response_chars=100))) == [
        f"r{i}" for i in range(9)]
    counts = preview(frame, {"rv_min": 3, "rv_max": 5, "cd_min": 4, "cd_max": 4})
    assert counts["total"] == 10 and counts["passing_filters"] == counts["selected"] == 4 and not counts["mixer"]
    assert counts["dropped_by"] == {"correctness": 2, "rv": 2, "cd": 2}


def test_same_seed_same_selection_on_many_rows():
    rng = np.random.default_rng(0)
    n = 5000
    rows = [_row(i, int(rng.integers(0, 10)), int(rng.integers(0, 10)), ok=int(rng.random() < 0.8),
                 q=f"q{i // 4}") for i in range(n)]
    frame = frame_from_rows(rows)
    spec = CurateSpec(samples_per_bin=200, one_per_question=True, seed=7)
    a, b = select(frame, spec), select(frame, spec)
    assert np.array_equal(a.index, b.index) and len(a.index) == 600
    assert not np.array_equal(a.index, select(frame, spec.model_copy(update={"seed": 8})).index)
    qs = frame["question_id"].to_numpy()[a.index]
    assert len(set(qs)) == len(qs)
    assert (frame["correctness"].to_numpy()[a.index] == 1).all()


def test_score_stats_counts():
    rows = [_row(0, 2, 1), _row(1, 2, 1), _row(2, 5, 9), _row(3, None, 3)]
    frame = frame_from_rows(rows)
    st = score_stats(frame)
    assert st["rv_hist"][2] == 2 and st["rv_missing"] == 1 and st["cd_hist"][9] == 1
    assert st["rv_cd_matrix"][2][1] == 2 and st["rv_cd_matrix"][5][9] == 1 and sum(map(sum, st["rv_cd_matrix"])) == 3
    assert st["teachers"] == {"T1": 4}
    assert score_stats(frame, np.array([2]))["rows"] == 1


def test_spec_validation():
    with pytest.raises(ValidationError, match="increase"):
        CurateSpec(cd_edges=[0, 6, 3])
    with pytest.raises(ValidationError, match="rv_min"):
        CurateSpec(rv_min=6, rv_max=3)
    with pytest.raises(ValidationError):
        CurateSpec(rv_max=12)


def test_sft_rows_system1_and_system2():
    row = {"id": "a", "instruction": "2+2?", "output": "<think>add them</think>\n\n4", "rv": 1, "teacher": "T"}
    assert sft_row(row, "system2")["output"] == "<think>\nadd them\n</think>\n\n4"
    s1 = sft_row(row, "system1")
    assert s1["output"] == "4" and s1["instruction"] == "2+2?" and s1["id"] == "a" and s1["rv"] == 1
    omni = {"id": "b", "instruction": "q", "thought": "t", "solution": "s", "output": "<think>t</think>s"}
    assert sft_row(omni, "system2")["output"] == "<think>\nt\n</think>\n\ns"
    assert sft_row({"id": "c", "instruction": "q", "output": "just an answer"}, "system2") is None


def test_curate_job_writes_selection_and_report(workspace, tmp_path):
    rows = [_row(10 * cd + rv, rv=rv, cd=cd, q=f"q{rv}") for cd in (1, 4, 7) for rv in range(10)]
    write_records(workspace.datasets / "scored.jsonl", rows)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ctx = JobContext("c", run_dir, workspace)
    curate_job.run(CurateJob(input="scored", samples_per_bin=2, export="system2"), ctx)
    out = [json.loads(x) for x in (workspace.datasets / "scored-curated.jsonl").read_text().splitlines()]
    assert len(out) == 6 and all(r["output"].startswith("<think>\n") for r in out)
    report = json.loads((ctx.output_dir / "curation.json").read_text())
    assert report["counts"]["selected"] == 6 and report["plots"]["after"]["rows"] == 6
    assert report["plots"]["before"]["rows"] == 30
    meta = json.loads((workspace.datasets / "scored-curated.meta.json").read_text())
    assert meta["rows"] == 6 and meta["curation"]["export"] == "system2"

    curate_job.run(CurateJob(input="scored", output="all-correct", export="system1"), ctx)
    out = [json.loads(x) for x in (workspace.datasets / "all-correct.jsonl").read_text().splitlines()]
    assert len(out) == 30 and out[0]["output"] == f"A{rows[0]['id'][1:]}"

    # From the cached frame (questions stored as codes): one trace per question, the best-fitting one.
    curate_job.run(CurateJob(input="scored", output="per-q", one_per_question=True), ctx)
    out = [json.loads(x) for x in (workspace.datasets / "per-q.jsonl").read_text().splitlines()]
    assert sorted(r["question_id"] for r in out) == sorted(f"q{rv}" for rv in range(10))
    assert {(r["rv"], r["cd"]) for r in out if r["rv"] in (2, 5, 8)} == {(2, 1), (5, 4), (8, 7)}


def test_dataset_frame_is_cached_until_the_file_changes(workspace, monkeypatch):
    from core.cot import frame_cache
    from core.cot.mix import cell_ids

    path = workspace.datasets / "s.jsonl"
    write_records(path, [_row(i, rv=i % 10, cd=3) for i in range(20)])
    frame = frame_cache.dataset_frame(workspace, "s")
    assert len(frame) == 20 and len(list((workspace.cache / "cot").glob("s-*.parquet"))) == 1
    assert cell_ids(frame, 4, 3) == ["r4", "r14"]
    assert cell_ids(frame, 4, 3, index=np.array([14, 15])) == ["r14"]

    def no_rebuild(rows):
        raise AssertionError("the cached frame should have been used")

    monkeypatch.setattr(frame_cache, "frame_from_rows", no_rebuild)
    again = frame_cache.dataset_frame(workspace, "s", ids=False)
    assert "id" not in again and again["rv"].tolist() == frame["rv"].tolist()
    monkeypatch.undo()

    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(_row(99, rv=1, cd=1)) + "\n")
    assert len(frame_cache.dataset_frame(workspace, "s")) == 21
    assert len(list((workspace.cache / "cot").glob("s-*.parquet"))) == 1  # the stale frame is gone


def test_plot_figures_from_stats():
    from core.cot import plots
    from core.cot.mix import plot_stats

    frame = frame_from_rows([_row(i, rv=i % 10, cd=(3 * i) % 10, teacher=f"T{i % 2}") for i in range(40)])
    stats = plot_stats(frame, select(frame, CurateSpec(samples_per_bin=2)))
    heat = plots.rv_cd_heatmaps(stats)
    assert [t.type for t in heat.data] == ["heatmap", "heatmap"]
    assert sum(map(sum, heat.data[0].z)) == 40 and sum(map(sum, heat.data[1].z)) == 6
    assert len(plots.score_histograms(stats).data) == 4
    assert plots.length_by_rv(stats).data[0].y[0] is not None
    assert list(plots.teachers(stats).data[0].x) == ["T0", "T1"]
