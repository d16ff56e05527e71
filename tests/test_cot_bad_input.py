"""Curation's input with a record that cannot be read is refused by file and line, never curated with the row left out
(issue 16: "Malformed rows are reported with file and line; nothing is lost"). The score frame (core.cot.frame_cache),
the tab's preview and the curate job read through core.data.store.iter_input like the other jobs; a frame's row k is
the file's row k, so picking rows by position never lands on another row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.config.data_jobs import CurateJob, CurateSpec
from core.cot import curate_job, explore, frame_cache
from core.data.errors import DataError
from core.jobs.context import JobContext
from tests.job_support import job_context, write_with_bad_lines

ROWS = [{"id": f"r{i}", "question_id": f"q{i}", "instruction": f"Q{i}", "rv": i % 10, "cd": 3, "correctness": 1,
         "teacher": "T1", "output": f"<think>t{i}</think> A{i}"} for i in range(6)]
BROKEN = '{"id": "r2", "instruction": "Q2", "rv": 2, "cd'


def _write(path: Path, bad: dict[int, str] | None = None) -> Path:
    """ROWS as JSON Lines, with line n (1-based) replaced by bad[n]."""
    return write_with_bad_lines(path, ROWS, bad or {})


def _ctx(ws, tmp_path) -> JobContext:
    return job_context(ws, tmp_path, "job-curate")


@pytest.mark.parametrize("where", ["dataset", "file"])
@pytest.mark.parametrize("bad", [BROKEN, '["a list", "not a row"]'])
def test_the_curate_job_refuses_a_broken_line_by_file_and_line(workspace, tmp_path, where, bad):
    """Before: the job 'succeeded' with 5 of 6 rows and said nothing of line 3."""
    path = _write(workspace.datasets / "scored.jsonl" if where == "dataset" else tmp_path / "in" / "scored.jsonl",
                  {3: bad})
    ref = "scored" if where == "dataset" else str(path)
    with pytest.raises(DataError) as err:
        curate_job.run(CurateJob(input=ref, output="picked"), _ctx(workspace, tmp_path))
    assert str(err.value).startswith("scored.jsonl:3: ") and "nothing was selected" in str(err.value)
    assert [(e.file, e.line) for e in err.value.errors] == [("scored.jsonl", 3)]
    assert not (workspace.datasets / "picked.jsonl").exists()
    assert not list((workspace.cache / "cot").glob("*.parquet"))  # no frame cached for a file it could not read


def test_every_bad_record_is_listed_and_the_preview_says_the_same(workspace):
    _write(workspace.datasets / "scored.jsonl", {2: BROKEN, 5: "{not json"})
    with pytest.raises(DataError, match=r"^scored\.jsonl:2: not valid JSON .*\(and 1 more bad record") as err:
        explore.preview(workspace, "scored", CurateSpec())  # the Curation tab shows this as a warning (a UserError)
    assert [e.line for e in err.value.errors] == [2, 5]


def test_a_fixed_file_curates_every_row(workspace, tmp_path):
    """Once the line is fixed the same job runs on all six rows (the file changed, so its frame is built again)."""
    path = _write(workspace.datasets / "scored.jsonl", {3: BROKEN})
    with pytest.raises(DataError):
        curate_job.run(CurateJob(input="scored", output="picked"), _ctx(workspace, tmp_path))
    _write(path)
    curate_job.run(CurateJob(input="scored", output="picked"), _ctx(workspace, tmp_path))
    out = [json.loads(x) for x in (workspace.datasets / "picked.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in ROWS]


@pytest.mark.parametrize("where", ["dataset", "file"])
def test_positions_never_shift_onto_another_row(workspace, tmp_path, where):
    """selected_rows picks by the frame's positions. Blank lines are not rows (frame and pick agree); a record that
    cannot be read before a wanted position (the file changed after its frame was built) stops the pick, where the
    old reader skipped it and returned the next row under the wanted row's position."""
    path = workspace.datasets / "s.jsonl" if where == "dataset" else tmp_path / "in" / "s.jsonl"
    _write(path)
    path.write_text(path.read_text().replace("\n", "\n\n", 2), encoding="utf-8")  # blank lines after rows 1 and 2
    ref = "s" if where == "dataset" else str(path)
    frame = frame_cache.dataset_frame(workspace, ref, confined=False)
    assert frame["id"].tolist() == [r["id"] for r in ROWS]
    picked = curate_job.selected_rows(workspace, ref, np.array([1, 4]))
    assert [r["id"] for r in picked] == ["r1", "r4"]
    _write(path, {2: BROKEN})
    with pytest.raises(DataError, match=r"^s\.jsonl:2: not valid JSON"):
        curate_job.selected_rows(workspace, ref, np.array([1, 4]))
