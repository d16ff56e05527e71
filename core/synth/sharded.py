"""One synthesis or judge job over several replicas of its teacher (OpenAI-compatible endpoints, vLLM servers).

A job lists them in `backends` next to its `teacher` (or `judge`); `open_teachers` builds one backend per replica and
the runner (core.synth.runner.run_units) hands the rows to `ReplicaPool.run_units`:

- Rows are partitioned by id: a row's home replica is a stable hash of its id (blake2b: the same in every process
  and on every resume), so which replica serves which rows is known before the job starts and reproducible.
- Each replica keeps its `concurrency` requests in flight from its own queue. A replica whose queue is empty takes
  rows from the end of the longest other queue (work stealing): a fast replica is never idle while a slow one has a
  backlog.
- A request that failed on a replica for a reason of the replica's (connection refused or dropped, timeout, 5xx or a
  malformed body after the backend's own retries) is not a reject: the row goes to another live replica that has
  not failed it. A replica that fails `DOWN_AFTER` such requests in a row is taken out for the rest of the job; its
  queued rows are partitioned again over the replicas still up (the same hash over the survivors). A row is rejected
  for a failed request only when the server said the request itself is wrong (4xx) or every live replica failed it.
  With no replica left the job raises TeacherUnavailable: unfinished rows stay pending for a resume.
- Each row sits in exactly one queue position, is taken once, and its outcome is yielded once, in the job's process,
  which writes it; the job's resume (skip every id already in the output or rejects) is unchanged. So no row is
  written twice, whichever replicas die and whether the job is resumed with the same replicas or others.
- Per replica: rows finished, tokens, rows/s while it was up, rows it took from other queues, and why it went down;
  in the job's progress lines (`replicas`), in its log every PROGRESS_LOG_S, and in the closing event (`replicas`
  as a mapping, for scripts).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from core.jobs.context import PROGRESS_LOG_S

DOWN_AFTER = 3  # requests failed in a row (each after the backend's own retries) that take a replica out
# HTTP statuses that say the request itself is wrong (the row's fault, not the replica's): the row is rejected
_ROW_FAULT = re.compile(r"^HTTP (4\d\d)\b")
_REPLICA_4XX = {408, 409, 425, 429}  # 4xx that are the server's state (busy, timeout), retried elsewhere


def home_of(uid: str, n: int) -> int:
    """The replica (0..n-1) a row id belongs to; stable across processes, unlike hash()."""
    digest = hashlib.blake2b(uid.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % max(1, n)


def replica_fault(error: str | None) -> bool:
    """Whether a failed request is the replica's fault (retry the row elsewhere) rather than the row's."""
    m = _ROW_FAULT.match(error or "")
    return not (m and int(m.group(1)) not in _REPLICA_4XX)


@dataclass
class Replica:
    """One backend serving the teacher, and what it did."""

    name: str
    backend: Any
    window: int  # requests in flight
    done: int = 0  # rows finished here (output or reject)
    ok: int = 0
    tokens: int = 0
    stolen: int = 0  # rows taken from another replica's queue
    handed_off: int = 0  # rows sent elsewhere when it failed them or went down
    failed_in_row: int = 0
    down: str | None = None  # why it was taken out
    started: float = field(default_factory=time.time)
    ended: float | None = None

    def rate(self, now: float | None = None) -> float:
        end = self.ended or now or time.time()
        return self.done / max(end - self.started, 1e-6)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.done, "ok": self.ok, "tokens": self.tokens,
                               "rows_per_s": round(self.rate(now), 3), "stolen": self.stolen,
                               "handed_off": self.handed_off}
        if self.down:
            out["down"] = self.down
        return out

    def words(self, now: float | None = None) -> str:
        text = f"{self.name}: {self.done} rows · {self.rate(now):.2f} rows/s"
        if self.stolen:
            text += f" · {self.stolen} taken over"
        return text + (f" · down ({self.down[:80]})" if self.down else "")


class ReplicaPool:
    """Several backends serving one model, used by the synthesis runner as one teacher (see the module doc)."""

    def __init__(self, replicas: list[Replica], down_after: int = DOWN_AFTER,
                 event: Callable[..., None] | None = None, log: Callable[[str], None] | None = None) -> None:
        if not replicas:
            raise ValueError("a replica pool needs at least one backend")
        self.replicas = replicas
        self.down_after = down_after
        self._event = event
        self._log = log
        self._logged = time.time()
        self._stranded = 0  # rows of the current run left pending because no replica was left

    @property
    def name(self) -> str:
        """The teacher's name (an endpoint names its model once it has answered)."""
        return str(getattr(self.replicas[0].backend, "name", "") or "")

    def live(self) -> list[int]:
        return [i for i, r in enumerate(self.replicas) if r.down is None]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        return {r.name: r.to_dict(now) for r in self.replicas}

    def line(self) -> str:
        now = time.time()
        return " | ".join(r.words(now) for r in self.replicas)

    def close(self) -> None:
        for r in self.replicas:
            close = getattr(r.backend, "close", None)
            if close:
                close()

    # ------------------------------------------------------------------------------------------ dispatch
    def run_units(self, operator: Any, units: list, sampling: Any, params: Any, *, retries: int = 0,
                  should_stop: Callable[[], bool] = lambda: False) -> Iterator[Any]:
        """Outcomes of `units` in completion order, each unit exactly once (or left pending when every replica is
        down or a stop was asked for)."""
        from core.synth.runner import TeacherUnavailable, _serve_one

        n = len(self.replicas)
        queues: list[deque] = [deque() for _ in range(n)]
        live = self.live()
        for u in units:
            queues[live[home_of(u.id, len(live))]].append(u)
        failed_on: dict[str, set[int]] = {}
        inflight: dict[Future, tuple[int, Any]] = {}
        busy = [0] * n
        self._stranded = 0

        def take(i: int) -> Any:
            if queues[i]:
                return queues[i].popleft()
            for j in sorted((j for j in range(n) if j != i and queues[j]), key=lambda j: -len(queues[j])):
                q = queues[j]
                for k in range(len(q) - 1, -1, -1):
                    if i not in failed_on.get(q[k].id, ()):
                        u = q[k]
                        del q[k]
                        self.replicas[i].stolen += 1
                        return u
            return None

        def refill(pool: ThreadPoolExecutor) -> None:
            for i, r in enumerate(self.replicas):
                while r.down is None and busy[i] < r.window and not should_stop():
                    u = take(i)
                    if u is None:
                        break
                    busy[i] += 1
                    inflight[pool.submit(_serve_one, operator, u, r.backend, sampling, params, retries)] = (i, u)

        with ThreadPoolExecutor(max_workers=sum(r.window for r in self.replicas),
                                thread_name_prefix="replica") as pool:
            refill(pool)
            while inflight:
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for f in done:
                    i, u = inflight.pop(f)
                    busy[i] -= 1
                    out = f.result()
                    if self._settle(i, u, out, queues, failed_on):
                        yield out
                self._maybe_log()
                refill(pool)
        left = sum(len(q) for q in queues) + self._stranded
        if left and not self.live():
            reasons = "; ".join(f"{r.name}: {r.down}" for r in self.replicas)
            raise TeacherUnavailable(
                f"every replica of the teacher is down ({reasons}). Start them again (or list others under "
                f"backends), then resume the job: {left} rows not yet processed are still pending")

    def _settle(self, i: int, u: Any, out: Any, queues: list[deque], failed_on: dict[str, set[int]]) -> bool:
        """Book one outcome of replica i; True when it is final (yield it), False when the row was sent elsewhere
        or left pending."""
        r = self.replicas[i]
        failed = out.reject is not None and out.reject.get("stage") == "request"
        if failed and replica_fault(out.reject.get("reason", "").removeprefix("request failed: ")):
            r.failed_in_row += 1
            if r.down is None and r.failed_in_row >= self.down_after:
                self._take_down(i, out.reject["reason"], queues)
            failed_on.setdefault(u.id, set()).add(i)
            others = [j for j in self.live() if j not in failed_on[u.id]]
            if others:
                r.handed_off += 1
                queues[others[home_of(u.id, len(others))]].appendleft(u)
                return False
            if not self.live():
                self._stranded += 1
                return False  # pending: no replica is left to serve it, a resume will
        elif not failed:
            r.failed_in_row = 0
        r.done += 1
        r.ok += out.row is not None
        r.tokens += out.prompt_tokens + out.completion_tokens
        out.replica = r.name
        return True

    def _take_down(self, i: int, reason: str, queues: list[deque]) -> None:
        r = self.replicas[i]
        r.down, r.ended = reason, time.time()
        live = self.live()
        moved: list = []
        if live:  # with none left its rows stay queued: pending for a resume
            moved = list(queues[i])
            queues[i].clear()
        for u in moved:
            queues[live[home_of(u.id, len(live))]].append(u)
        r.handed_off += len(moved)
        if self._event:
            names = ", ".join(self.replicas[j].name for j in live) or "none"
            self._event(f"replica {r.name} is down after {r.failed_in_row} failed requests in a row ({reason}); "
                        f"its {len(moved)} queued rows go to the others ({names})", replica=r.name, down=reason,
                        moved=len(moved))

    def _maybe_log(self) -> None:
        now = time.time()
        if self._log and now - self._logged >= PROGRESS_LOG_S:
            self._logged = now
            self._log(f"replicas: {self.line()}")


def replica_name(k: int, backend: Any) -> str:
    """r1, r2, ... with the server's host:port where the backend has one."""
    url = getattr(backend, "base_url", None)
    where = urlparse(url).netloc if url else str(getattr(backend, "name", "") or "")
    return f"r{k + 1} {where}".strip()


def window_of(spec: Any) -> int:
    """Requests a replica keeps in flight: its endpoint's concurrency (a local model's batch size)."""
    return spec.endpoint.concurrency if getattr(spec, "endpoint", None) else max(1, getattr(spec, "batch_size", 8))


def open_teachers(spec: Any, backends: list, ws: Any, ctx: Any, make: Callable[..., Any]) -> Any:
    """The job's teacher: one backend (`make(spec, ...)`) or, with `backends`, a ReplicaPool of spec + those."""
    if not backends:
        return make(spec, ws, devices=ctx.devices, log_dir=ctx.run_dir)
    opened: list[Replica] = []
    try:
        for k, s in enumerate([spec, *backends]):
            b = make(s, ws, devices=ctx.devices, log_dir=ctx.run_dir)
            opened.append(Replica(replica_name(k, b), b, window_of(s)))
    except BaseException:
        for r in opened:
            close = getattr(r.backend, "close", None)
            if close:
                close()
        raise
    pool = ReplicaPool(opened, event=ctx.event, log=ctx.log.info)
    ctx.event(f"{len(opened)} replicas share the rows (partitioned by id): {', '.join(r.name for r in opened)}",
              replicas=[r.name for r in opened])
    return pool


def progress_fields(backend: Any) -> dict[str, Any]:
    """What a progress line adds for a pool: {"replicas": "r1 ...: 120 rows · 4.1 rows/s | r2 ..."}."""
    return {"replicas": backend.line()} if isinstance(backend, ReplicaPool) else {}


def report(backend: Any, ctx: Any) -> None:
    """The closing per-replica line (an event with the figures as a mapping)."""
    if isinstance(backend, ReplicaPool):
        ctx.event(f"per replica: {backend.line()}", replicas=backend.snapshot())
