"""The job list at scale: status, kind and text filters and the limit are applied in SQL, so the newest N of
thousands of jobs costs N decoded rows, with the same answer as filtering every row; the Jobs tab's tick looks at
the rows it shows plus the jobs that run and the one it shows, never at the whole list."""

from __future__ import annotations

import pytest

from core.jobs.manager import JobManager
from core.jobs.store import Store

STATUSES = ("succeeded", "failed", "stopped", "cancelled", "queued")
KINDS = ("selftest", "synth", "train_sft")
NAMES = ("label rows", "Über-Lauf nightly", "蒸馏 student", "SFT tiny")


def _fill(m: JobManager, n: int) -> list[dict]:
    """n rows, oldest first, cycling statuses / kinds / names (queued ones get queue times out of order)."""
    rows = []
    with m.store.tx() as conn:
        for i in range(n):
            status = STATUSES[i % len(STATUSES)]
            row = {"id": f"20260101-000000-job-{i:04d}", "name": f"{NAMES[i % len(NAMES)]} {i}",
                   "kind": KINDS[i % len(KINDS)], "status": status, "request": {"count": 0, "indices": None},
                   "devices": [], "created_at": 1000.0 + i, "run_dir": str(m.workspace.runs / f"job-{i:04d}"),
                   "queued_at": (5000.0 - i) if status == "queued" else None}
            m.store.insert(row, conn)
            rows.append(row)
    return rows


@pytest.fixture
def many(workspace, monkeypatch):
    """A manager over 600 jobs that never starts one (no refresh), and a counter of rows decoded from SQLite."""
    m = JobManager(workspace, attach=False)
    rows = _fill(m, 600)
    decoded = {"n": 0}
    real = Store._decode

    def counting(row):
        decoded["n"] += row is not None
        return real(row)

    monkeypatch.setattr(Store, "_decode", staticmethod(counting))
    yield m, rows, decoded
    m.store.close()


def _reference(rows, want=None, kind=None, text=None, limit=None):
    """What the list means, by filtering every row in Python (newest first)."""
    out = [r["id"] for r in reversed(rows) if (not want or r["status"] in want) and (not kind or r["kind"] == kind)
           and (not text or text.lower() in f"{r['id']} {r['name']} {r['kind']}".lower())]
    return out[:limit] if limit else out


@pytest.mark.parametrize(("status", "want", "kind", "text"), [
    (None, None, None, None),
    ("failed", {"failed"}, None, None),
    ("finished", {"succeeded", "failed", "stopped", "cancelled"}, "synth", None),
    (["stopped", "cancelled"], {"stopped", "cancelled"}, None, "NIGHTLY"),
    (None, None, "train_sft", "über-lauf"),  # non-ASCII case folding, as Python's lower()
    (None, None, None, "蒸馏"),
    (None, None, None, "JOB-0123"),
])
def test_the_newest_n_with_filters_come_from_sql(many, status, want, kind, text):
    m, rows, decoded = many
    decoded["n"] = 0
    got = m.list(status=status, kind=kind, text=text, limit=25, refresh=False)
    assert [i.id for i in got] == _reference(rows, want, kind, text, 25)
    assert decoded["n"] == len(got), "rows decoded beyond the ones listed"


def test_queue_positions_count_every_queued_job_whatever_the_filter(many):
    m, rows, _ = many
    queued = sorted((r for r in rows if r["status"] == "queued"), key=lambda r: r["queued_at"])
    got = m.list(status="queued", limit=3, refresh=False)
    assert [(i.id, i.queue_position) for i in got] == [
        (r["id"], 1 + queued.index(r)) for r in reversed(rows) if r["status"] == "queued"][:3]
    assert got[0].queue_position == 1  # the newest queued job was queued first (queued_at runs backwards here)


def test_an_unlimited_list_is_every_job(many):
    m, rows, _ = many
    assert len(m.list(refresh=False)) == len(rows)


def test_the_jobs_tab_tick_reads_the_rows_it_shows_not_the_whole_list(many):
    """At 600 jobs the table shows TABLE_LIMIT of them; a filtered view and the followed job cost no more."""
    from studio.tabs.jobs import TABLE_LIMIT, _watched

    m, rows, decoded = many
    decoded["n"] = 0
    oldest = rows[0]["id"]
    watched = _watched(m, oldest)
    live = [r["id"] for r in reversed(rows) if r["status"] == "queued"]
    assert [i.id for i in watched] == [*live, oldest]  # the jobs that run, newest first, then the one shown
    assert _watched(m, "20991231-no-such-job") == watched[:-1]  # a deleted job is dropped, not an error
    decoded["n"] = 0
    shown = m.list(status="failed", kind="synth", limit=TABLE_LIMIT, refresh=False)
    _watched(m, oldest)
    assert decoded["n"] == len(shown) + len(live) + 1 < len(rows)
