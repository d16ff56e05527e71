"""OS processes of jobs: start one in its own process group, recognise it again later, signal its whole group.

A pid alone is not an identity (pids are reused), so a job's process is (pid, create time). A job's process
group is its pid (start_new_session), and every helper it starts (dataloader workers, accelerate ranks, a vLLM
server) stays in that group unless it calls setsid itself: signalling the group reaches them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

CTIME_TOLERANCE_S = 0.05  # psutil's create_time is rounded to clock ticks


def create_time(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


def is_alive(pid: int | None, ctime: float | None) -> bool:
    """True when the process `pid` still exists, is the one started at `ctime`, and is not a zombie."""
    if not pid:
        return False
    try:
        p = psutil.Process(pid)
        if ctime is not None and abs(p.create_time() - ctime) > CTIME_TOLERANCE_S:
            return False
        return p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes in process group `pgid`."""
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            continue
    return out


def signal_group(pid: int | None, ctime: float | None, sig: int) -> bool:
    """Send `sig` to the job's process group. Refuses when `pid` now belongs to another process (reused pid):
    while the leader lives its pid cannot be reused, and once it is gone a new group with that id needs a new
    leader with that pid, which the create-time check would see."""
    if not pid:
        return False
    leader_ctime = create_time(pid)
    if leader_ctime is not None and ctime is not None and abs(leader_ctime - ctime) > CTIME_TOLERANCE_S:
        return False
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_group_remnants(pid: int | None, ctime: float | None) -> int:
    """SIGKILL whatever is left in a finished job's group (a helper that outlived the worker). Returns the count."""
    if not pid or is_alive(pid, ctime):
        return 0
    if create_time(pid) is not None and ctime is not None:
        return 0  # the pid is someone else's now; its group is not ours
    left = group_members(pid)
    if left:
        signal_group(pid, ctime, signal.SIGKILL)
    return len(left)


def spawn(cmd: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start a worker in a new session (its own process group), stdout+stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(cwd),
            start_new_session=True, close_fds=True,
        )


def terminate_children(timeout: float = 5.0) -> None:
    """From inside a worker: end every descendant (children first TERM, then KILL), so none outlives the job."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for c in children:
        try:
            c.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for c in alive:
        try:
            c.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=2.0)
