"""A full disk mid-synthesis, on a real small filesystem (a tmpfs mounted for the test; skipped where mounting is not
allowed): the job fails as "disk full" naming the folder, the CLI returns at once with that message and no
traceback, `jobs list` / `data import` answer with a message, and after space is freed a resume writes every row
exactly once. A manager (what the studio holds) keeps answering while the job list cannot be written."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from core.data.io import write_records
from tests.fake_openai_server import FakeOpenAIServer

CLI = [sys.executable, "-m", "core.cli.main"]
ROWS = 60


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs: small enough to fill in a blink, large enough for a workspace."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a tmpfs here ({e}): the disk-full tests need a small filesystem of their own")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): the disk-full tests need root")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file (big blocks, then pages); returns it."""
    filler = disk / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb", buffering=0) as f:
        for block in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    return filler


def eds(ws: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--workspace", str(ws), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def lines(path: Path) -> list[dict]:
    out = []
    for ln in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            out.append(json.loads(ln))
        except ValueError:
            pass  # a torn last line (the write that hit the full disk): resume cuts it off
    return out


def test_disk_full_mid_synthesis_fails_named_and_resumes_exactly_once(small_disk):
    ws = small_disk / "ws"
    ids = [f"r{i:03d}" for i in range(ROWS)]
    (ws / "datasets").mkdir(parents=True)
    write_records(ws / "datasets" / "qs.jsonl", [{"id": i, "instruction": f"Question {i}?"} for i in ids])
    out = ws / "datasets" / "qs-label.jsonl"
    served, filled = [], threading.Event()

    def answer(msgs):  # after 20 answers, hold the rest until the disk is full: the job cannot end before (under load)
        served.append(1)
        if len(served) > 20:
            filled.wait(60)
        return "an answer " * 200

    with FakeOpenAIServer(latency=0.05, answer=answer) as srv:
        cfg = small_disk / "label.yaml"
        cfg.write_text(f"kind: synth\ninput: qs\noperator: label\nteacher:\n  type: openai\n  endpoint:\n"
                       f"    base_url: {srv.base_url}\n    concurrency: 2\n", encoding="utf-8")
        cli = subprocess.Popen([*CLI, "--workspace", str(ws), "--config", str(cfg)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(lines(out)) < 10:
            assert time.monotonic() < deadline and cli.poll() is None, "the job made no progress"
            time.sleep(0.05)
        filler = fill(small_disk)
        filled_at = time.monotonic()
        filled.set()
        try:
            stdout, stderr = cli.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            cli.kill()
            stdout, stderr = cli.communicate()
            pytest.fail(f"the CLI did not return on a full disk:\n{stderr[-3000:]}")
        returned_s = time.monotonic() - filled_at
        assert cli.returncode == 1, stderr
        assert "disk full: no space left in workspace/datasets" in stderr, stderr
        assert "fix: free space" in stderr
        assert "Traceback" not in stdout + stderr
        assert returned_s < 20

        # While the disk is still full (the reserve the worker freed taken too): the list and an import answer,
        # without a traceback.
        fillers = [filler, fill(small_disk)]
        listed = eds(ws, "jobs", "list", "--json")
        assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
        (job,) = json.loads(listed.stdout)
        assert job["status"] == "failed" and job["reason"].startswith("disk full: no space left in workspace/")
        assert job["cause"] == "disk_full"
        assert not (Path(job["run_dir"]) / ".space-reserve").exists()  # the worker's reserve made room for this
        log = (Path(job["run_dir"]) / "log.txt").read_text(encoding="utf-8").splitlines()
        assert log[-1].startswith(f"[worker] job {job['id']} failed: disk full")  # on a line of its own
        big = small_disk.parent / "big.jsonl"  # outside the full disk: only the import's copy needs space
        write_records(big, [{"id": f"b{i}", "instruction": "x" * 500} for i in range(50)])
        imported = eds(ws, "data", "import", str(big), "--name", "big")
        assert imported.returncode != 0 and "Traceback" not in imported.stdout + imported.stderr, imported.stderr
        assert "disk full" in imported.stderr or "no space" in imported.stderr.lower(), imported.stderr

        for f in fillers:
            os.unlink(f)
        resumed = eds(ws, "jobs", "resume", job["id"], "--follow", timeout=120)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
    ok = lines(out)
    bad = lines(ws / "datasets" / "qs-label.rejects.jsonl")
    got = [r["id"] for r in ok] + [r["id"] for r in bad]
    assert len(got) == len(set(got)), "a row was written twice"
    assert sorted(got) == ids, "a row was lost"
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(ok), "a torn line was left in the output"


def test_manager_keeps_answering_while_the_job_list_cannot_be_written(small_disk):
    """What the studio holds: looking still works (store_problem says why the list may be behind), acting says
    "disk full" as a message; once space is back the vanished worker is recorded."""
    from core.jobs.errors import DiskFull
    from core.jobs.failure import cause_of
    from core.jobs.manager import JobManager

    m = JobManager(small_disk / "ws")
    job = m.submit(_selftest(steps=1))
    m.wait(job, timeout=30)
    dead = subprocess.Popen(["true"])
    dead.wait()
    m.store.update(job, {"status": "running", "pid": dead.pid, "pid_ctime": None, "attempt": 2})  # worker gone
    with sqlite3.connect(m.workspace.db_path) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the list's next write needs new space
    filler = fill(small_disk)
    try:
        assert m.list()[0].status == "running"  # answered from what the list says
        assert m.store_problem and m.store_problem.startswith("disk full")
        assert m.get(job).id == job
        with pytest.raises(DiskFull) as refused:
            m.submit(_selftest(steps=1))
        assert "no space left in" in str(refused.value) and refused.value.code == "disk_full"
        fresh = JobManager(small_disk / "ws")  # a studio (re)started on the full disk opens the list
        assert [i.id for i in fresh.list()] == [job]
    finally:
        os.unlink(filler)
    info = m.get(job)
    assert info.status == "failed" and m.store_problem is None
    assert cause_of(info).name == "vanished"


def _selftest(steps: int):
    from core.config.selftest import SelftestJob

    return SelftestJob(steps=steps, delay_s=0.0)
