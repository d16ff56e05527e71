"""`python -m core.jobs.worker RUN_DIR`: the process that runs one job and records how it ended.

It loads `job.yaml`, imports the kind's entry, runs it with a JobContext, and writes the final status:
succeeded, stopped (the entry returned after a stop request), cancelled, or failed with a classified reason. Its
exit status agrees with that outcome (0 only for success). Before exiting it ends any helper processes it
started, records the outcome in the job list, and starts whatever queued jobs can now use the freed devices.

`--remote` is how a cluster (Ray, core.jobs.ray_executor) runs it: the run folder is the only thing shared, so the
worker takes its secrets from the run folder's one-shot file, its devices from what Ray gave, and leaves the job list
(SQLite on this machine) to the studio, which asks the cluster how the job is.

`--rank [--step NAME]` is the mode used by `accelerate launch` for multi-GPU training: run only the entry
(of pipeline step NAME), and leave the bookkeeping to the supervising worker.

A full disk must not leave a job "running" forever: the worker holds a small reserve file in its run folder from the
start and deletes it before writing its outcome, so the outcome ("disk full: no space left in <folder>") still fits
after the job's own writes filled the disk. Log lines that no longer fit are dropped instead of failing the job.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

from core.config.errors import ConfigError
from core.jobs import procs
from core.jobs.context import JobContext
from core.jobs.errors import StoreUnavailable
from core.jobs.failure import classify_exception
from core.jobs.launch import DistributedFailed, EntryUnavailable, resolve_entry, run_entry
from core.jobs.progress import compute
from core.jobs.rundir import (
    ACTIVE,
    CANCELLED,
    CONFIG_FILE,
    FAILED,
    LOG_FILE,
    METRICS_FILE,
    RUNNING,
    STARTING,
    STOPPED,
    SUCCEEDED,
    JsonlTail,
    has_flag,
    read_status,
    tail_text,
    update_status,
)
from core.secrets import scrub
from core.workspace import Workspace

EXIT_CODES = {SUCCEEDED: 0, FAILED: 1, STOPPED: 3, CANCELLED: 4}
EXIT_BAD_CONFIG = 2
RESERVE_FILE = ".space-reserve"
RESERVE_BYTES = 1 << 20  # room for status.json, the job list's update and the last log lines on a full disk


class Terminated(BaseException):
    """SIGTERM/SIGINT arrived while the entry ran: unwind it (its `finally` blocks still save)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class _ScrubbingStream:
    """stdout/stderr wrapper that blanks secret values before they reach log.txt. Everything but writing is the
    real stream's (fileno, encoding, isatty: libraries such as faulthandler and tqdm ask for them)."""

    def __init__(self, stream: Any, known: list[str]):
        self._stream = stream
        self._known = known

    def write(self, s: str) -> int:
        try:
            self._stream.write(scrub(s, self._known))
        except OSError:  # a full disk: the log loses this line, the job goes on (its own writes will say why)
            pass
        return len(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Signals:
    """Signal handling: raise Terminated inside the entry, remember it elsewhere, ignore repeats during cleanup."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.armed = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
            if self.armed:
                self.armed = False
                raise Terminated(signum)

    def quiet(self) -> None:
        self.armed = False
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


class SpaceReserve:
    """A file of RESERVE_BYTES held while the job runs, deleted before the outcome is written: on a disk the job
    filled, that is the room the outcome needs."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES):
        self.path = path
        self.size = size

    def take(self) -> None:
        """Allocate the reserve; OSError (ENOSPC) when the disk is already full: the job fails before it starts."""
        with open(self.path, "wb") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, self.size)
            except (AttributeError, OSError) as e:
                if isinstance(e, OSError) and e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                f.write(b"\0" * self.size)  # a filesystem without fallocate: real blocks all the same
            f.flush()

    def release(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass


def load_job_config(run_dir: Path) -> Any:
    from core.config.io import parse_config

    path = run_dir / CONFIG_FILE
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return parse_config(data, str(path))


def _setup_output(known_secrets: list[str]) -> None:
    sys.stdout = _ScrubbingStream(sys.stdout, known_secrets)
    sys.stderr = _ScrubbingStream(sys.stderr, known_secrets)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def supervise(run_dir: Path, remote: bool = False) -> int:
    status = read_status(run_dir)
    job_id = os.environ.get("EDS_JOB_ID") or status.get("id") or run_dir.name
    attempt = int(status.get("attempt") or 1)
    devices = list(status.get("devices") or ["cpu"])
    if remote:
        from core.jobs.ray_executor import remote_setup

        devices = remote_setup(run_dir)
    workspace = Workspace(Path(os.environ.get("EDS_WORKSPACE_ROOT") or run_dir.parent.parent))
    known = [v for k, v in os.environ.items() if k.startswith("EDS_SECRET_") and v]
    _setup_output(known)
    sigs = _Signals()
    sigs.install()
    manager = None if remote else _manager(workspace)
    if manager is not None and not _register(manager, job_id, attempt):
        return EXIT_CODES[CANCELLED]  # cancelled between being claimed and starting: do nothing
    started = time.time()
    reserve = SpaceReserve(run_dir / RESERVE_FILE)

    outcome, reason, detail, cause = SUCCEEDED, "", "", ""
    exit_code: int | None = None
    config: Any = None
    try:
        reserve.take()
        update_status(run_dir, status=RUNNING, pid=os.getpid(), started_at=started, attempt=attempt,
                      devices=devices, step=None, reason="", detail="", cause="")
        print(f"[worker] job {job_id} attempt {attempt} on {', '.join(devices)} (pid {os.getpid()})", flush=True)
        config = load_job_config(run_dir)
        ctx = JobContext(job_id=job_id, run_dir=run_dir, workspace=workspace, attempt=attempt, devices=devices)
        sigs.armed = True
        try:
            if sigs.received is not None:
                raise Terminated(sigs.received)
            run_entry(config, ctx)
        finally:
            sigs.armed = False  # from here on a signal is only remembered: the outcome must get written
        if sigs.received is not None:
            raise Terminated(sigs.received)
        if has_flag(run_dir, "stop"):
            outcome, reason = STOPPED, "stopped on request; what was produced so far is kept"
    except Terminated as t:
        if has_flag(run_dir, "cancel"):
            outcome, reason = CANCELLED, "cancelled"
        elif has_flag(run_dir, "stop"):
            outcome, reason = STOPPED, "did not stop in time; terminated (what was saved so far is kept)"
        else:
            outcome, reason = FAILED, f"terminated by {t}"
    except EntryUnavailable as e:
        outcome, reason, cause = FAILED, str(e), "unavailable"
    except DistributedFailed as e:
        outcome, reason, detail = FAILED, str(e), scrub(tail_text(run_dir / LOG_FILE, 20), known)
        cause = "exit_code"
    except BaseException as e:  # noqa: BLE001 - every way an entry can end must be recorded
        if isinstance(e, (SystemExit, KeyboardInterrupt)) and has_flag(run_dir, "cancel"):
            outcome, reason = CANCELLED, "cancelled"
        else:
            f = classify_exception(e, known, places=_places(config, workspace, run_dir),
                                   workspace_root=workspace.root)
            outcome, reason, detail, cause = FAILED, f.reason, f.detail, f.category
            if isinstance(e, ConfigError):
                exit_code = EXIT_BAD_CONFIG
            if f.category == "exception":
                traceback.print_exc()  # a bug: its traceback belongs in the log
            else:
                print(f"[worker] {f.reason}", flush=True)  # a cause a person fixes: named, no traceback
    if outcome == FAILED and not cause and reason.startswith("terminated by"):
        cause = "terminated"
    sigs.quiet()
    reserve.release()  # the room the outcome needs on a disk the job filled
    if exit_code is None:
        exit_code = EXIT_CODES[outcome]

    procs.terminate_children()
    now_status = read_status(run_dir)
    step, steps = now_status.get("step"), now_status.get("steps") or None
    if outcome == FAILED and steps and step:
        reason = f"step {step!r}: {reason}"
    try:
        progress = 1.0 if outcome == SUCCEEDED else compute(JsonlTail(run_dir / METRICS_FILE).read(), steps).fraction
    except Exception:
        progress = None
    ended = time.time()
    try:
        update_status(run_dir, status=outcome, reason=reason, detail=detail, ended_at=ended, exit_code=exit_code,
                      cause=cause)
    except OSError as e:  # still no room: the job list below (or whoever looks next) records the outcome
        print(f"[worker] could not write status.json: {e}", flush=True)
    print(_line_start(run_dir) + f"[worker] job {job_id} {outcome}" + (f": {reason}" if reason else ""), flush=True)
    if manager is not None:
        try:
            manager.finish_from_worker(job_id, attempt, {
                "status": outcome, "reason": reason, "detail": detail, "ended_at": ended, "exit_code": exit_code,
                "progress": progress, "step": step, "pid": os.getpid(), "started_at": started, "cause": cause,
            })
            manager.refresh()  # start the queued jobs that can use the devices this job held
        except StoreUnavailable as e:
            print(f"[worker] could not record the outcome in the job list: {e}", flush=True)
        except Exception:
            logging.getLogger("job").exception("could not record the outcome in the job list")
    sys.stdout.flush()
    return exit_code


def _line_start(run_dir: Path) -> str:
    """A newline when the log ends mid-line (a line cut by a full disk), so the outcome starts a line of its own."""
    try:
        with open(run_dir / LOG_FILE, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return "" if f.read(1) == b"\n" else "\n"
    except OSError:
        return ""


def _places(config: Any, workspace: Workspace, run_dir: Path) -> list[Any]:
    """Where the job writes (its outputs, its run folder): where to look for the full disk a write failed on."""
    from core.jobs.outputs import writes

    try:
        outs = writes(config, workspace) if config is not None else []
    except Exception:  # naming the folder is a courtesy; it must never hide the failure itself
        outs = []
    return [*outs, run_dir, workspace.root]


def _manager(workspace: Workspace) -> Any:
    """The job list, opened without re-running discovery side effects; None if the database is unusable."""
    try:
        from core.jobs.manager import JobManager

        return JobManager(workspace, attach=False)
    except Exception:
        logging.getLogger("job").exception("the job list is not reachable; running without it")
        return None


def _register(manager: Any, job_id: str, attempt: int) -> bool:
    """Mark our row running with our pid (the launcher does it too; whoever is first). False if cancelled."""
    me = os.getpid()
    try:
        manager.store.update(job_id, {"status": RUNNING, "pid": me, "pid_ctime": procs.create_time(me)},
                             expect_status=(STARTING,), expect_attempt=attempt)
    except StoreUnavailable:
        pass  # the launcher marks us running too; a full disk fails the job below, by name
    row = manager.store.get(job_id)
    return bool(row and row["status"] in ACTIVE and row["attempt"] == attempt)


def rank_main(run_dir: Path, step: str | None) -> int:
    """One rank of a multi-GPU launch: just the entry; the supervisor records the outcome."""
    config = load_job_config(run_dir)
    if step:
        matches = [s.job for s in getattr(config, "steps", []) if s.name == step]
        if not matches:
            print(f"pipeline has no step {step!r}", file=sys.stderr)
            return 2
        config = matches[0]
    status = read_status(run_dir)
    rank = int(os.environ.get("RANK", "0"))
    ctx = JobContext(
        job_id=status.get("id") or run_dir.name, run_dir=run_dir,
        workspace=Workspace(Path(os.environ.get("EDS_WORKSPACE_ROOT") or run_dir.parent.parent)),
        attempt=int(status.get("attempt") or 1), devices=list(status.get("devices") or []), step_name=step,
        is_main=rank == 0,
    )
    known = [v for k, v in os.environ.items() if k.startswith("EDS_SECRET_") and v]
    _setup_output(known)
    sigs = _Signals()
    sigs.install()
    sigs.armed = True
    try:
        resolve_entry(config)(config, ctx)
    except Terminated:
        return 143
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.jobs.worker", description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--rank", action="store_true", help="one process of a multi-GPU launch")
    ap.add_argument("--step", help="with --rank: the pipeline step to run")
    ap.add_argument("--remote", action="store_true", help="run on a cluster node (Ray): the run folder only")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    if args.rank:
        return rank_main(run_dir, args.step)
    return supervise(run_dir, remote=args.remote)


if __name__ == "__main__":
    sys.exit(main())
