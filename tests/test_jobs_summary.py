"""core.jobs.summary is the one renderer of a job's status: the Jobs tab, the Start tab and the CLI read the same
words from it, in the page's language where the studio passes its words."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.jobs import summary


@dataclass
class Info:
    """The JobInfo fields the renderer reads (a plain stand-in: no store, no processes)."""

    id: str = "j1"
    name: str = "label qa"
    kind: str = "synth"
    status: str = "running"
    reason: str = ""
    progress: float | None = 0.3
    eta_s: float | None = 65.0
    done: int | None = 3
    total: int | None = 10
    step: str | None = "train"
    steps: list[str] = field(default_factory=list)
    unit: str = "steps"
    rate: float | None = None
    pipeline_eta_s: float | None = None
    queue_position: int | None = None
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    request: str = "cpu"
    attempt: int = 1
    created_at: float | None = 1.0
    started_at: float | None = 1.0
    ended_at: float | None = 61.0
    exit_code: int | None = None
    run_dir: str = "/ws/runs/j1"

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "stopped", "cancelled")

    @property
    def duration_s(self) -> float | None:
        return None if not self.started_at else (self.ended_at or 0) - self.started_at


def test_progress_text_and_status_line_share_one_order():
    info = Info()
    assert summary.progress_text(info) == "running · train · 3/10 steps · 30% · ETA 1m"
    assert summary.status_line(info) == "**label qa** (`j1`) — running · train · 3/10 steps · 30% · ETA 1m"
    failed = Info(status="failed", reason="out of memory", eta_s=None)
    assert summary.status_line(failed, markdown=False).endswith("— failed · train · 3/10 steps · 30%\n  out of memory")
    assert summary.status_line(Info(attempt=2)).endswith("ETA 1m · attempt 2")


def test_a_pipeline_line_keeps_each_figure_on_its_own_scale():
    steps = ["prepare", "label", "sft", "capture", "kd", "eval-a", "eval-b", "eval-c", "report"]
    info = Info(step="label", steps=steps, done=113, total=265, unit="rows", rate=4.1, eta_s=62.0,
                pipeline_eta_s=24 * 60 + 5, progress=0.21)
    assert summary.progress_text(info) == (
        "running · stage 2 of 9 · label · 113/265 rows · 4.1 rows/s · stage ETA 1m · pipeline ETA ≈ 24m")
    assert "21%" not in summary.progress_text(info)  # the pipeline's percentage is in the table, not beside the rows
    assert summary.table_row(info)[5:7] == ["21%", "≈ 24m"]  # the table's progress and ETA: the whole pipeline
    last = Info(step="report", steps=steps, eta_s=30.0, pipeline_eta_s=30.0, rate=0.25, done=3, total=10)
    assert summary.progress_text(last) == "running · stage 9 of 9 · report · 3/10 steps · 4.0 s/step · stage ETA 30s"
    assert summary.eta(last) == "30s"
    unmeasured = Info(step="label", steps=steps, eta_s=None, pipeline_eta_s=None)
    assert summary.progress_text(unmeasured) == "running · stage 2 of 9 · label · 3/10 steps"


def test_words_translate_states_and_labels():
    words = {"running": "运行中", "queued": "排队中", "eta": "预计剩余", "counts": "{done}/{total} {units}",
             "unit_steps": "步", "stage_of": "第 {i}/{n} 阶段", "stage_eta": "本阶段剩余", "pipeline_eta": "全部剩余",
             "rate_fast": "{n} {units}/秒", "unit_rows": "行"}
    assert summary.progress_text(Info(), words) == "运行中 · train · 3/10 步 · 30% · 预计剩余 1m"
    pipe = Info(step="b", steps=["a", "b", "c"], unit="rows", rate=2.0, pipeline_eta_s=600.0)
    assert summary.progress_text(pipe, words) == (
        "运行中 · 第 2/3 阶段 · b · 3/10 行 · 2.0 行/秒 · 本阶段剩余 1m · 全部剩余 ≈ 10m")
    queued = Info(status="queued", queue_position=2, progress=None, done=None, step=None, eta_s=None)
    assert summary.state(queued, words) == "排队中 #2"
    assert summary.progress_text(queued) == "queued #2"
    assert summary.queue_note(queued, {"queued_at": "第 {pos} 位，等待 {request}"}) == "第 2 位，等待 cpu"
    assert summary.queue_note(Info()) == ""


def test_log_line_renders_a_progress_record():
    from core.jobs.progress import Progress

    p = Progress(step=113, total=265, stage="label", unit="rows", rate=4.1, eta_s=37.0)
    assert summary.log_line(p) == "progress: label · 113/265 rows · 4.1 rows/s · ETA 37s"
    assert summary.log_line(Progress(step=1, total=None)) == ""


def test_finished_job_has_no_eta_and_clamped_progress():
    done = Info(status="succeeded", progress=1.2, eta_s=5.0)
    assert summary.eta(done) == "" and summary.percent(done) == "100%" and summary.fraction(done) == 1.0
    assert summary.percent(Info(progress=None)) == "" and summary.fraction(Info(progress=None)) is None


def test_table_row_and_detail_fields():
    row = summary.table_row(Info(devices=["cuda:0", "cuda:1"]))
    assert len(row) == len(summary.TABLE_COLUMNS)
    by_col = dict(zip(summary.TABLE_COLUMNS, row, strict=True))
    assert by_col["status"] == "running" and by_col["progress"] == "30%" and by_col["eta"] == "1m"
    assert by_col["devices"] == "cuda:0, cuda:1" and by_col["duration"] == "1m00s"
    fields = dict(summary.detail_fields(Info(exit_code=0)))
    assert fields["progress"] == "30.0%" and fields["exit code"] == 0 and "reason" not in fields
