"""CPU of an idle studio with no browser connected (issue 18): Gradio's polling queue as shipped vs studio/idle.py.

Starts `distill-studio` on a fresh workspace, waits until it answers and 10 s more, then reads utime + stime of the
process from /proc/<pid>/stat over the window: once with the queue as Gradio ships it (studio.idle.quiet_when_idle
replaced by a no-op before studio.app is imported), once as the studio runs.

    .venv/bin/python bench/idle_cpu.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.net import free_port  # noqa: E402

LAUNCH = ("import sys\n{patch}from studio.app import main\nsys.exit(main(sys.argv[1:]))")
AS_SHIPPED = "import studio.idle\nstudio.idle.quiet_when_idle = lambda demo: demo\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(seconds: float, patch: str, tmp: Path) -> float:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", LAUNCH.format(patch=patch), "--workspace", str(tmp / f"ws-{port}"),
           "--port", str(port)]
    with open(tmp / f"studio-{port}.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the studio did not start: {(tmp / f'studio-{port}.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/gradio_api/info", timeout=10).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        time.sleep(10)  # past the start and the info request
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        shipped = idle_cpu(a.seconds, AS_SHIPPED, Path(d))
        quiet = idle_cpu(a.seconds, "", Path(d))
    print(f"idle studio, no browser, {a.seconds:.0f} s: Gradio's queue as shipped {100 * shipped:.2f} % of a core, "
          f"with studio/idle.py {100 * quiet:.2f} %")


if __name__ == "__main__":
    main()
