"""What a status panel shows and follows, without a browser: the Jobs tab's detail of a failed job (cause and fix
first, in the page's language, the traceback folded below), and which job a panel follows (the one picked by hand,
else the newest that runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.jobs.failure import CAUSES
from studio.i18n import strings, t
from studio.job_panel import follow
from studio.tabs.jobs import detail_md


@dataclass
class Info:
    id: str
    status: str = "running"
    name: str = "a job"
    kind: str = "selftest"
    reason: str = ""
    detail: str = ""
    attempt: int = 1
    progress: float | None = None
    eta_s: float | None = None
    done: int | None = None
    total: int | None = None
    step: str | None = None
    steps: list[str] = field(default_factory=list)
    queue_position: int | None = None
    request: str = "cpu"
    run_dir: str = "/ws/runs/x"

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "stopped", "cancelled")


TRACEBACK = 'Traceback (most recent call last):\n  File "core/synth/job.py", line 3\nDataError: rows.jsonl:3: <bad>'


def test_a_failed_job_reads_cause_and_fix_first_and_folds_the_traceback():
    info = Info("j1", status="failed", reason="data error: rows.jsonl:3: not valid JSON", detail=TRACEBACK)
    text = detail_md(info, lambda key, **kw: t(key, "en", **kw))
    cause, fix = text.index("**Cause:**"), text.index("**What to do:**")
    folded = text.index("<details")
    assert cause < fix < text.index("rows.jsonl:3: not valid JSON") < folded < text.index("Traceback (most recent")
    assert "A data file could not be used" in text and "import it again in the Data tab" in text
    assert "&lt;bad&gt;" in text and "<bad>" not in text  # the traceback is text, never markup
    zh = detail_md(info, lambda key, **kw: t(key, "zh", **kw))
    assert "原因" in zh and "数据文件无法使用" in zh and "Cause" not in zh


def test_only_failed_jobs_show_a_cause():
    stopped = detail_md(Info("j2", status="stopped", reason="stopped on request"), lambda key, **kw: t(key, "en", **kw))
    assert "Cause" not in stopped and "stopped on request" in stopped and "<details" not in stopped


def test_every_cause_is_worded_in_both_languages():
    for lang in ("en", "zh"):
        have = strings(lang)
        missing = [f"{k}_{name}" for name in CAUSES for k in ("cause", "fix") if f"jobs.{k}_{name}" not in have]
        assert not missing, f"{lang}: studio/i18n/{lang}/jobs.yaml lacks {missing}"


def test_a_panel_follows_the_newest_running_job_until_one_is_picked():
    old = Info("old", status="succeeded")
    new = Info("new", status="running")
    jobs = [new, old]  # newest first
    assert follow(None, False, jobs) == "new"
    assert follow("old", False, jobs) == "new"  # the one it showed ended and another runs: move on
    assert follow("old", True, jobs) == "old"  # picked by hand: stays
    assert follow("old", False, [Info("new", status="succeeded"), old]) == "old"  # nothing runs: stay
    assert follow("new", False, [Info("newer", status="queued"), new, old]) == "new"  # still running: stay
    assert follow("gone", True, jobs) == "new"  # deleted: follow what runs
    assert follow(None, False, [old]) is None


def test_the_training_picker_lists_pipelines_that_train():
    from types import SimpleNamespace

    from core.pickers import job_choices

    jobs = [SimpleNamespace(id="p1", name="train tiny on qs", kind="pipeline", step_kinds=["train_sft", "capture"]),
            SimpleNamespace(id="p2", name="synthesize qs", kind="pipeline", step_kinds=["synth"]),
            SimpleNamespace(id="t1", name="sft", kind="train_sft", step_kinds=[])]
    store = SimpleNamespace(list=lambda **kw: jobs)
    assert [v for _, v in job_choices(store, ("train_sft", "train_kd"), pipelines=True)] == ["p1", "t1"]
    assert [v for _, v in job_choices(store, ("train_sft", "train_kd"))] == ["t1"]
