"""Benchmark of the studio's weight: the first page, the time to start, and the Jobs tab's refresh (issue 17).

Everything is compared in the same run against a baseline started the same way, so a loaded machine moves both:

1. first page: bytes of GET / (the HTML with the page's config and API description inlined) and of GET /config,
   ours vs a bare Gradio app with 8 tabs (one text box, one button each), both uncompressed.
2. start to HTTP 200: wall time from starting the process (`python -m studio.app` / `python bare_app.py`, the same
   queue and launch settings) until GET / answers 200, alternating ours and bare `--runs` times after one unmeasured
   start of each (bytecode cached as on a user's machine, in a temporary PYTHONPYCACHEPREFIX); the line gives the
   median of the per-pair ratios (and each side's median); also each server's own CPU seconds (user + system, from
   /proc) until that answer, which a loaded machine moves far less than wall time.
3. Jobs tab refresh: a studio on a workspace with 200 finished jobs, then (rows added while it runs) 5,000. The Jobs
   tab's own timer event is called over HTTP as the browser calls it (the queue's join + event stream, or a direct
   POST when the event is not queued), with the tab's initial filter values:
   - CPU per tick: the studio process's CPU time (/proc/<pid>/stat) over sequential ticks of one client; the ratio
     5,000 jobs / 200 jobs is 1.0 when a refresh costs O(rows shown);
   - latency with 20 clients, each ticking every 1.5 s (the tab's interval, phases spread) vs 1 client alone: p95;
     every client's first tick (its page's session being made) happens before the clock starts, and the CPU of such
     a first tick is printed on its own.

Run: .venv/bin/python bench/studio.py [--runs 5] [--tree PATH] [--only page,start,jobs]
`--tree` measures another checkout (e.g. `git worktree add /tmp/old <commit>`) with this bench and this venv.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 20
TICK_S = 1.5  # studio.tabs.jobs.TICK_S: how often an open Jobs tab asks
FEW_JOBS, MANY_JOBS = 200, 5000

BARE_APP = """
import sys
import gradio as gr

with gr.Blocks(title="bare", analytics_enabled=False) as demo:
    with gr.Tabs():
        for i in range(8):
            with gr.Tab(f"Tab {i}"):
                gr.Markdown(f"## Tab {i}")
                box = gr.Textbox(label="text")
                out = gr.Textbox(label="echo")
                gr.Button("Go").click(lambda s: s, box, out)
demo.queue(default_concurrency_limit=8).launch(
    server_name="127.0.0.1", server_port=int(sys.argv[1]), ssr_mode=False, share=False, show_error=True,
    footer_links=["api", "settings"], _frontend=False)
"""


# processes ------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A started web app (`{port}` in `cmd` becomes a free port): its process, address, and the seconds from start
    until GET / answered 200."""

    def __init__(self, cmd: list[str], cwd: Path, log: Path, timeout: float = 180.0) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # bytecode cached, as usual
        env.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONPATH=str(cwd),
                   PYTHONPYCACHEPREFIX=str(log.parent / "pycache"))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([a.replace("{port}", str(port)) for a in cmd], cwd=cwd,
                                     stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"{cmd} did not answer within {timeout}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        self.start_s = time.perf_counter() - t0
        self.start_cpu_s = self.cpu_s()  # the server's own CPU until then: what load on the machine moves least

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def ours(tree: Path, ws: Path, tmp: Path) -> Server:
    ws.mkdir(parents=True, exist_ok=True)
    return Server([sys.executable, "-m", "studio.app", "--workspace", str(ws), "--port", "{port}"],
                  tree, tmp / f"studio-{ws.name}.log")


def bare(tmp: Path) -> Server:
    app = tmp / "bare_app.py"
    app.write_text(BARE_APP)
    return Server([sys.executable, str(app), "{port}"], tmp, tmp / "bare.log")


def page_bytes(url: str) -> tuple[int, int, int]:
    """(GET / bytes, GET /config bytes, GET / bytes as sent with gzip when the browser accepts it)."""
    page = httpx.get(url + "/", headers={"Accept-Encoding": "identity"}, timeout=60).content
    config = httpx.get(url + "/config", headers={"Accept-Encoding": "identity"}, timeout=60).content
    with httpx.stream("GET", url + "/", headers={"Accept-Encoding": "gzip"}, timeout=60) as r:
        wire = sum(len(chunk) for chunk in r.iter_raw())
    return len(page), len(config), wire


# the Jobs tab's tick over HTTP ----------------------------------------------------------------------------------


class Tick:
    """The Jobs tab's timer event, called as the browser calls it: found in /config as the event a gr.Timer's tick
    triggers that writes the jobs table; inputs are the components' initial values (state is kept server-side)."""

    def __init__(self, url: str) -> None:
        self.url = url
        cfg = httpx.get(url + "/config", timeout=60).json()
        comps = {c["id"]: c for c in cfg["components"]}
        table = next(c["id"] for c in cfg["components"] if c["props"].get("elem_id") == "jobs-table")
        dep = next(d for d in cfg["dependencies"] if table in d["outputs"]
                   and any(comps.get(tid, {}).get("type") == "timer" and ev == "tick" for tid, ev in d["targets"]))
        self.fn_index, self.queued, self.api_name = dep["id"], dep["queue"], dep["api_name"]
        self.trigger = next(tid for tid, ev in dep["targets"] if ev == "tick")
        self.data = [None if comps[i]["type"] == "state" else comps[i]["props"].get("value") for i in dep["inputs"]]
        self.prefix = url + cfg.get("api_prefix", "/gradio_api")

    def __call__(self, client: httpx.Client, session: str) -> float:
        """One tick; seconds until its result arrived."""
        body = {"data": self.data, "fn_index": self.fn_index, "session_hash": session, "event_data": None,
                "trigger_id": self.trigger}
        t0 = time.perf_counter()
        if not self.queued:
            r = client.post(f"{self.prefix}/run/{self.api_name}", json=body, timeout=120)
            r.raise_for_status()
            return time.perf_counter() - t0
        r = client.post(f"{self.prefix}/queue/join", json=body, timeout=120)
        r.raise_for_status()
        event_id = r.json()["event_id"]
        with client.stream("GET", f"{self.prefix}/queue/data", params={"session_hash": session}, timeout=120) as s:
            for line in s.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                    if not msg.get("success"):
                        raise RuntimeError(f"tick failed: {msg}")
                    return time.perf_counter() - t0
        raise RuntimeError("the event stream closed before the tick completed")


def sequential(server: Server, tick: Tick, n: int) -> tuple[list[float], float]:
    """n ticks of one client one after another: (latencies, server CPU seconds per tick)."""
    session = uuid.uuid4().hex[:11]
    with httpx.Client() as c:
        tick(c, session)  # the session's first tick fills its state
        cpu0 = server.cpu_s()
        times = [tick(c, session) for _ in range(n)]
        cpu = server.cpu_s() - cpu0
    return times, cpu / n


def concurrent(tick: Tick, clients: int, seconds: float) -> list[float]:
    """`clients` Jobs tabs open at once, each ticking every TICK_S (phases spread); every tick's latency."""
    out: list[float] = []
    lock = threading.Lock()
    until: list[float] = []  # when the clients stop: set as the barrier releases them
    ready = threading.Barrier(clients, action=lambda: until.append(time.perf_counter() + seconds))

    def client(k: int) -> None:
        session = uuid.uuid4().hex[:11]
        with httpx.Client() as c:
            tick(c, session)  # the page's first event: Gradio makes the session (a cost of its own, see new_session)
            ready.wait()
            next_at = time.perf_counter() + TICK_S * k / clients
            while next_at < until[0]:
                time.sleep(max(0.0, next_at - time.perf_counter()))
                dt = tick(c, session)
                with lock:
                    out.append(dt)
                next_at = max(next_at + TICK_S, time.perf_counter())  # the browser's timer waits for the answer

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return out


def new_session(server: Server, tick: Tick, n: int = 5) -> float:
    """Server CPU seconds of a tick that is a new page's first event (Gradio copies every component's config into
    the new session: a cost per page load that grows with the page, not with the jobs)."""
    with httpx.Client() as c:
        cpu0 = server.cpu_s()
        for _ in range(n):
            tick(c, uuid.uuid4().hex[:11])
        return (server.cpu_s() - cpu0) / n


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def fill_jobs(ws: Path, total: int) -> None:
    """Copies of the workspace's one real finished job until it lists `total` (rows only: a finished job's row is
    all a refresh needs)."""
    from core.jobs.store import Store
    from core.workspace import Workspace

    store = Store(Workspace.open(ws).db_path)
    have = store.rows()
    template = have[-1]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with store.tx() as conn:
        for i in range(len(have), total):
            row = {k: v for k, v in template.items() if k != "seq"}
            row.update(id=f"{stamp}-selftest-f{i:05d}", name=f"finished {i}", created_at=template["created_at"] + i)
            store.insert(row, conn)
    store.close()


def real_job(ws: Path) -> None:
    """One real selftest job run to the end (the template of the copies)."""
    from core.config.selftest import SelftestJob
    from core.jobs.manager import JobManager

    m = JobManager(ws)
    job_id = m.submit(SelftestJob(steps=20, delay_s=0.0))
    info = m.wait(job_id, 180)
    assert info.status == "succeeded", info
    settle(m)


def settle(m) -> None:
    """Wait until no job runs and the manager's threads (worker reapers, the stop watchdog) have finished, so a
    temporary workspace can be removed without a thread still writing to its job list."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and m.list(status="active", refresh=True):
        time.sleep(0.2)
    for th in threading.enumerate():
        if th.name.startswith("reap-") or th.name == "jobs-stop-watchdog":
            th.join(max(0.0, deadline - time.monotonic()))
    m.store.close()


# the three parts ------------------------------------------------------------------------------------------------


def bench_page_and_start(tree: Path, tmp: Path, runs: int, only: set[str]) -> dict:
    res: dict = {"ours_start": [], "bare_start": [], "ratios": [], "ours_cpu": [], "bare_cpu": [], "cpu_ratios": []}
    for name in ("ours", "bare"):  # a first start of each writes its bytecode cache; it measures the pages only
        srv = ours(tree, tmp / "ws-page", tmp) if name == "ours" else bare(tmp)
        try:
            res[f"{name}_page"] = page_bytes(srv.url)
        finally:
            srv.stop()
    for k in range(runs if "start" in only else 0):
        pair = {}
        for name in ("ours", "bare") if k % 2 == 0 else ("bare", "ours"):  # alternate who starts first
            srv = ours(tree, tmp / f"ws-start-{k}", tmp) if name == "ours" else bare(tmp)
            try:
                pair[name] = srv.start_s
                pair[f"{name}_cpu"] = srv.start_cpu_s
            finally:
                srv.stop()
        res["ours_start"].append(pair["ours"])
        res["bare_start"].append(pair["bare"])
        res["ratios"].append(pair["ours"] / pair["bare"])
        res["ours_cpu"].append(pair["ours_cpu"])
        res["bare_cpu"].append(pair["bare_cpu"])
        res["cpu_ratios"].append(pair["ours_cpu"] / pair["bare_cpu"])
    return res


def bench_jobs(tree: Path, tmp: Path, seq_n: int, seconds: float) -> dict:
    ws = tmp / "ws-jobs"
    real_job(ws)
    fill_jobs(ws, FEW_JOBS)
    srv = ours(tree, ws, tmp)
    try:
        tick = Tick(srv.url)
        few_t, few_cpu = sequential(srv, tick, seq_n)
        fill_jobs(ws, MANY_JOBS)
        many_t, many_cpu = sequential(srv, tick, seq_n)
        first_cpu = new_session(srv, tick)
        crowd = concurrent(tick, CLIENTS, seconds)
    finally:
        srv.stop()
    return {"queued": tick.queued, "first_cpu": first_cpu, "few_cpu": few_cpu, "many_cpu": many_cpu,
            "few_p95": p95(few_t), "alone_p95": p95(many_t), "alone_median": statistics.median(many_t),
            "crowd_p95": p95(crowd), "crowd_median": statistics.median(crowd), "crowd_n": len(crowd)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose studio to measure (default: this one)")
    ap.add_argument("--runs", type=int, default=5, help="ours/bare start pairs")
    ap.add_argument("--ticks", type=int, default=40, help="sequential ticks per CPU figure")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long the 20 clients tick")
    ap.add_argument("--only", default="page,start,jobs")
    a = ap.parse_args()
    tree = a.tree.resolve()
    sys.path.insert(0, str(tree))  # fill_jobs/real_job use that checkout's core
    only = set(a.only.split(","))
    random.seed(0)
    kb = lambda n: f"{n / 1024:,.0f} KB"  # noqa: E731
    ms = lambda s: f"{1000 * s:.0f} ms"  # noqa: E731
    out: dict = {"tree": str(tree)}
    with tempfile.TemporaryDirectory(prefix="eds-bench-studio-") as tmp_name:
        tmp = Path(tmp_name)
        if only & {"page", "start"}:
            r = bench_page_and_start(tree, tmp, a.runs, only)
            (op, oc, ow), (bp, bc, bw) = r["ours_page"], r["bare_page"]
            print(f"first page GET / bytes: {kb(op)} / {kb(bp)} = {op / bp:.1f}x  (goal <= 500 KB; gzip on the "
                  f"wire {kb(ow)} / {kb(bw)})")
            print(f"GET /config bytes: {kb(oc)} / {kb(bc)} = {oc / bc:.1f}x")
            out.update(page_bytes=op, config_bytes=oc, page_gzip_bytes=ow, bare_page_bytes=bp, bare_config_bytes=bc)
            if "start" in only:
                ratio = statistics.median(r["ratios"])
                print(f"start to HTTP 200: {statistics.median(r['ours_start']):.2f} s / "
                      f"{statistics.median(r['bare_start']):.2f} s = {ratio:.2f}x  (median of {a.runs} alternating "
                      f"pairs; per pair {', '.join(f'{x:.2f}' for x in r['ratios'])}; goal <= 1.15x)")
                cpu = statistics.median(r["cpu_ratios"])
                print(f"  server CPU to HTTP 200: {statistics.median(r['ours_cpu']):.2f} s / "
                      f"{statistics.median(r['bare_cpu']):.2f} s = {cpu:.2f}x  (median per pair; per pair "
                      f"{', '.join(f'{x:.2f}' for x in r['cpu_ratios'])}; steadier than wall time on a loaded machine)")
                out.update(start_s=statistics.median(r["ours_start"]), bare_start_s=statistics.median(r["bare_start"]),
                           start_ratio=ratio, start_ratios=r["ratios"], start_cpu_ratio=cpu,
                           start_cpu_ratios=r["cpu_ratios"])
        if "jobs" in only:
            j = bench_jobs(tree, tmp, a.ticks, a.seconds)
            how = "queued" if j["queued"] else "not queued (direct POST)"
            print(f"Jobs tick CPU, {MANY_JOBS:,} jobs / {FEW_JOBS} jobs: {ms(j['many_cpu'])} / {ms(j['few_cpu'])} = "
                  f"{j['many_cpu'] / j['few_cpu']:.2f}x  (server CPU per tick, {a.ticks} ticks; tick {how})")
            print(f"Jobs tick p95 at {MANY_JOBS:,} jobs, {CLIENTS} clients / 1 client: {ms(j['crowd_p95'])} / "
                  f"{ms(j['alone_p95'])} = {j['crowd_p95'] / j['alone_p95']:.1f}x  (goal: 20 clients <= 300 ms; "
                  f"medians {ms(j['crowd_median'])} / {ms(j['alone_median'])}; {j['crowd_n']} ticks)")
            print(f"  (a new page's first tick: {ms(j['first_cpu'])} CPU, Gradio making the session; not counted "
                  "in the p95, whose clients opened their pages first)")
            out.update({f"jobs_{k}": v for k, v in j.items()})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
