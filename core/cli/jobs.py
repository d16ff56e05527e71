"""Headless jobs: `easydistill --config FILE`, `easydistill run --kind selftest`, `easydistill jobs ...`.

Following a job prints its log lines on stdout and a progress bar on stderr; the exit code is 0 only when the job
succeeded (1: it failed, stopped or was cancelled; 2: the input was wrong). Ctrl-C asks whether to stop the job
(save and exit), cancel it, or detach and leave it running; without a terminal to ask on, it stops the job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import yaml

from core.config import ConfigError, parse_config
from core.errors import UserError
from core.jobs import summary
from core.jobs.progress import format_duration
from core.jobs.rundir import LOG_FILE
from core.workspace import Workspace

POLL_S = 0.5


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="submit a job from flags (e.g. --kind selftest --steps 20) and follow it")
    run.add_argument("--kind", required=True, help="job kind, e.g. selftest")
    run.add_argument("--steps", type=int, help="selftest: how many steps to count")
    run.add_argument("--delay", type=float, help="selftest: seconds per step")
    run.add_argument("--fail-at", type=int, help="selftest: fail at this step (to see failure handling)")
    run.add_argument("--gpus", help="'auto', 'cpu', a count (2) or indices (0,1)")
    run.add_argument("--name", help="a name to find the job by")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="any config setting (value read as YAML; dotted keys for nested settings); repeatable")
    run.add_argument("--detach", dest="run_detach", action="store_true", help="print the job id and return")
    run.set_defaults(func=cmd_run)

    jobs = sub.add_parser("jobs", help="list, inspect and control jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = jsub.add_parser("list", help="jobs, newest first")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--status", help="a state (running, failed, ...), or 'active' / 'finished'")
    p.add_argument("--kind", help="only this kind")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0 = all)")
    p.set_defaults(func=cmd_list)
    p = jsub.add_parser("show", help="one job: state, reason, devices, run folder, config")
    p.add_argument("job", help="job id (or a unique prefix)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = jsub.add_parser("logs", help="the job's log (stdout and stderr of its process)")
    p.add_argument("job")
    p.add_argument("-n", "--tail", type=int, default=200, help="last N lines (default 200)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the job ends")
    p.set_defaults(func=cmd_logs)
    p = jsub.add_parser("stop", help="graceful stop: the job saves what it has and exits")
    p.add_argument("job")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before the stop is forced (default 120)")
    p.add_argument("--no-wait", action="store_true", help="request the stop and return")
    p.set_defaults(func=cmd_stop)
    p = jsub.add_parser("cancel", help="end the job now (no saving)")
    p.add_argument("job")
    p.set_defaults(func=cmd_cancel)
    p = jsub.add_parser("resume", help="a new attempt that continues from what the run folder holds")
    p.add_argument("job")
    p.add_argument("--follow", action="store_true", help="follow it as `--config` does")
    p.set_defaults(func=cmd_resume)
    p = jsub.add_parser("delete", help="remove a finished or queued job and its run folder")
    p.add_argument("job")
    p.set_defaults(func=cmd_delete)
    p = jsub.add_parser("compare", help="2-4 runs side by side: config keys that differ, final metrics, evaluations")
    p.add_argument("jobs", nargs="+", metavar="JOB", help="2 to 4 job ids (or unique prefixes)")
    p.add_argument("--plot", metavar="OUT.html", help="also write their curves overlaid to this HTML file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_compare)


# helpers ----------------------------------------------------------------------------------------------------------


def _manager(args: argparse.Namespace, **kw: Any):
    from core.jobs.manager import JobManager

    return JobManager(Workspace.open(args.workspace), **kw)


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _resolve(m: Any, ref: str) -> str:
    return m.resolve(ref)


def _exit_code(status: str) -> int:
    return 0 if status == "succeeded" else 1


# submit and follow ------------------------------------------------------------------------------------------------


def run_config(args: argparse.Namespace) -> int:
    """`easydistill --config FILE [--detach]` (called by core.cli.main)."""
    from core.cli.validate import load_or_report
    from core.presets import check_workspace, preset_of_file

    config = load_or_report(args.config)
    if config is None:
        return 2
    preset = preset_of_file(args.config)
    if preset is not None:  # a preset that continues another one: refuse before a job starts, naming the other
        problems = check_workspace(preset, Workspace.open(args.workspace))
        if problems:
            return _err("; ".join(problems))
    return submit_and_follow(args, config, detach=bool(args.detach))


def cmd_run(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {"kind": args.kind}
    for flag, key in (("steps", "steps"), ("delay", "delay_s"), ("fail_at", "fail_at"), ("name", "name")):
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
    if args.gpus:
        data["gpus"] = _parse_gpus(args.gpus)
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            return _err(f"--set {item!r}: expected KEY=VALUE")
        _assign(data, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    try:
        config = parse_config(data, "command line")
    except ConfigError as e:
        print(e.report(), file=sys.stderr)
        return 2
    return submit_and_follow(args, config, detach=args.run_detach)


def _parse_gpus(text: str) -> Any:
    text = text.strip()
    if text in ("auto", "cpu"):
        return text
    if "," in text or text.startswith("["):
        return [int(x) for x in text.strip("[]").split(",") if x.strip()]
    return int(text) if text.isdigit() else text


def _assign(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        data = data.setdefault(p, {})
    data[parts[-1]] = value


def submit_and_follow(args: argparse.Namespace, config: Any, detach: bool) -> int:
    from core.jobs.scheduler import DeviceRequestError

    m = _manager(args)
    try:
        job_id = m.submit(config)
    except (DeviceRequestError, UserError) as e:  # a device request it cannot meet, a path leading out, ...
        return _err(str(e))
    info = m.get(job_id, refresh=False)
    where = m.workspace.relative(info.run_dir)
    print(f"job {job_id} ({config.kind}) submitted; run folder {where}", file=sys.stderr)
    if info.status == "queued" and info.reason:
        print(f"job {job_id} {info.reason}", file=sys.stderr)  # waits for the job writing its input
    if detach:
        if info.status == "queued" and job_id in getattr(m, "_secrets", {}):
            print("warning: this job waits in the queue and its API key was given inline; the key lives only in "
                  "this process, which exits now, so the job will fail. Put the key in an environment variable and "
                  "reference it with api_key_env, or run without --detach.", file=sys.stderr)
        print(job_id)
        return 0
    return follow(m, job_id)


class ProgressBar:
    """One status line: redrawn in place on a terminal, printed on change otherwise (logs, CI)."""

    def __init__(self, stream: TextIO, width: int = 28):
        self.stream = stream
        self.tty = stream.isatty()
        self.width = width
        self.shown = False
        self._last_plain: tuple | None = None
        self._last_plain_t = 0.0

    def line(self, info: Any) -> str:
        """`[#######-----] running · train · step 3/10 · 30% · ETA 1m05s · 2m10s`: the bar, then the summary."""
        frac = summary.fraction(info)
        bar = "-" * self.width if frac is None else ("#" * round(frac * self.width)).ljust(self.width, "-")
        parts = [f"[{bar}] {summary.progress_text(info)}"]
        if info.duration_s is not None:
            parts.append(format_duration(info.duration_s))
        return " · ".join(parts)

    def clear(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def draw(self, info: Any) -> None:
        text = self.line(info)
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self.shown = True
            return
        key = (info.status, info.step, None if info.progress is None else int(info.progress * 10))
        now = time.monotonic()
        if key != self._last_plain or now - self._last_plain_t > 30 or info.finished:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_plain, self._last_plain_t = key, now

    def done(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


class LogFollower:
    """New complete lines of a job's log since the last call."""

    def __init__(self, path: Path, from_start: bool = True):
        self.path = path
        self.offset = 0 if from_start else (path.stat().st_size if path.exists() else 0)
        self._rest = b""

    def new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return []
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._rest + chunk
        *lines, self._rest = data.split(b"\n")
        return [ln.decode("utf-8", errors="replace") for ln in lines]


def _ask_interrupt() -> str:
    """Ctrl-C while following: stop, cancel or detach. Without a terminal: stop."""
    if not sys.stdin.isatty():
        return "stop"
    try:
        ans = input("\nStop the job (save and exit) [s], cancel it now [c], or detach and leave it running [d]? [s] ")
    except (KeyboardInterrupt, EOFError):
        return "stop"
    ans = ans.strip().lower()
    return {"c": "cancel", "d": "detach"}.get(ans[:1], "stop")


def _look(m: Any, job_id: str) -> Any:
    """The job's latest state. When the job list cannot be written (a full disk) and the job's worker is gone, its
    outcome cannot be recorded: StoreUnavailable is raised (the caller stops following, with that message) instead
    of polling forever; while the worker runs, following goes on."""
    from core.jobs import procs
    from core.jobs.errors import StoreUnavailable

    try:
        m.refresh()
    except StoreUnavailable:
        info = m.get(job_id, refresh=False)
        if not info.finished and not (info.pid and procs.is_alive(info.pid, None)):
            raise
    return m.get(job_id, refresh=False)


def follow(m: Any, job_id: str, show_logs: bool = True, from_start: bool = True) -> int:
    from core.jobs.failure import cause_of
    from core.jobs.manager import JobStateError
    from core.secrets import scrub

    info = m.get(job_id)
    bar = ProgressBar(sys.stderr)
    logs = LogFollower(Path(info.run_dir) / LOG_FILE, from_start=from_start)
    asked = False
    while True:
        try:
            info = _look(m, job_id)
            if show_logs:
                lines = logs.new_lines()
                if lines:
                    bar.clear()
                    sys.stdout.write("".join(scrub(ln) + "\n" for ln in lines))
                    sys.stdout.flush()
            bar.draw(info)
            if info.finished:
                break
            time.sleep(POLL_S)
        except KeyboardInterrupt:
            bar.clear()
            choice = "cancel" if asked else _ask_interrupt()
            asked = True
            try:
                if choice == "detach":
                    print(f"\ndetached; job {job_id} keeps running. Follow it again with: easydistill jobs logs "
                          f"{job_id} -f", file=sys.stderr)
                    return 0
                if choice == "cancel":
                    print("cancelling ...", file=sys.stderr)
                    m.cancel(job_id, wait=None)
                else:
                    print("stopping: the job saves what it has and exits (Ctrl-C again cancels) ...", file=sys.stderr)
                    m.stop(job_id)
            except JobStateError as e:  # e.g. it ended meanwhile: say so; the outcome below gives the exit code
                print(str(e), file=sys.stderr)
    bar.done()
    if show_logs:
        rest = logs.new_lines()
        if rest:
            sys.stdout.write("".join(scrub(ln) + "\n" for ln in rest))
    if info.status != "succeeded":
        print(f"job {job_id} {summary.state(info)}" + (f": {info.reason}" if info.reason else ""), file=sys.stderr)
        cause = cause_of(info)
        if cause is not None and cause.name != "exception":
            print(f"fix: {cause.fix}", file=sys.stderr)
        if info.detail and info.status == "failed" and not show_logs:
            print(info.detail, file=sys.stderr)
    else:
        print(f"job {job_id} succeeded; output in {m.workspace.relative(Path(info.run_dir) / 'output')}",
              file=sys.stderr)
    return _exit_code(info.status)


# jobs ... ---------------------------------------------------------------------------------------------------------


def _public(info: Any) -> dict:
    from core.jobs.failure import cause_of

    d = info.to_dict()
    keep = ("id", "name", "kind", "status", "reason", "progress_pct", "eta_s", "step", "queue_position", "devices",
            "attempt", "created_at", "started_at", "ended_at", "duration_s", "exit_code", "run_dir")
    out = {k: d[k] for k in keep}
    out["progress"] = out.pop("progress_pct")
    cause = cause_of(info)
    out["cause"] = cause.name if cause else None  # a failed job's cause (core.jobs.failure.CAUSES)
    return out


def cmd_list(args: argparse.Namespace) -> int:
    m = _manager(args)
    infos = m.list(status=args.status, kind=args.kind, limit=args.limit or None)
    if m.store_problem:
        print(f"warning: the job list may be behind: {m.store_problem}", file=sys.stderr)
    if args.json:
        print(json.dumps([_public(i) for i in infos], indent=1, default=str))
        return 0
    if not infos:
        print(f"no jobs in {m.workspace.root}", file=sys.stderr)
        return 0
    rows = [tuple(c.upper() for c in summary.TABLE_COLUMNS)]
    for i in infos:
        row = summary.table_row(i)
        row[1] = row[1][:28]  # the name column: keep the table one line per job
        rows.append(tuple(row))
    widths = [max(len(str(r[c])) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from core.jobs.manager import JobNotFound

    m = _manager(args)
    try:
        info = m.get(_resolve(m, args.job))
    except JobNotFound as e:
        return _err(str(e))
    config = m.config_text(info.id)
    if args.json:
        out = _public(info)
        out["detail"] = info.detail
        out["config"] = yaml.safe_load(config) if config else None
        print(json.dumps(out, indent=1, default=str))
        return 0
    for k, v in summary.detail_fields(info):
        print(f"{k + ':':16}{v}")
    if info.detail:
        print("\ndetail:\n" + info.detail)
    if config:
        print("\nconfig:\n" + config.rstrip())
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from core.jobs.manager import JobNotFound

    m = _manager(args)
    try:
        job_id = _resolve(m, args.job)
    except JobNotFound as e:
        return _err(str(e))
    text = m.logs(job_id, args.tail)
    if text:
        print(text)
    if not args.follow:
        return 0
    info = m.get(job_id)
    follower = LogFollower(Path(info.run_dir) / LOG_FILE, from_start=False)
    from core.secrets import scrub

    try:
        while True:
            for ln in follower.new_lines():
                print(scrub(ln), flush=True)
            if m.get(job_id).finished:
                for ln in follower.new_lines():
                    print(scrub(ln), flush=True)
                return 0
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return 0


def _control(args: argparse.Namespace, action: str) -> int:
    from core.jobs.manager import JobNotFound

    m = _manager(args)
    try:
        job_id = _resolve(m, args.job)
        if action == "stop":
            info = m.stop(job_id, wait=None if args.no_wait else args.timeout + m.kill_grace_s + 5,
                          timeout=args.timeout)
        elif action == "cancel":
            info = m.cancel(job_id, wait=m.cancel_grace_s + 10)
        elif action == "resume":
            m.resume(job_id)
            info = m.get(job_id)
        else:
            m.delete(job_id)
            print(f"deleted {job_id}", file=sys.stderr)
            return 0
    except ConfigError as e:
        print(e.report(), file=sys.stderr)
        return 2
    except (JobNotFound, ValueError) as e:  # JobStateError, DeviceRequestError
        return _err(str(e))
    if action == "resume" and getattr(args, "follow", False):
        return follow(m, job_id, from_start=False)
    print(summary.status_line(info, markdown=False))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    return _control(args, "stop")


def cmd_cancel(args: argparse.Namespace) -> int:
    return _control(args, "cancel")


def cmd_resume(args: argparse.Namespace) -> int:
    return _control(args, "resume")


def cmd_delete(args: argparse.Namespace) -> int:
    return _control(args, "delete")


def cmd_compare(args: argparse.Namespace) -> int:
    """`easydistill jobs compare A B [C D]`: the config diff, the final metrics and the evaluation results of the runs,
    a column each (core.jobs.compare, core.eval.compare.side_by_side); `--plot` writes the curves overlaid."""
    from core.cli.tables import text_table
    from core.eval.compare import side_by_side
    from core.jobs import compare
    from core.jobs.manager import JobNotFound

    m = _manager(args)
    try:
        runs = compare.load_runs(m, args.jobs)
    except (JobNotFound, compare.CompareError) as e:
        return _err(str(e))
    eval_headers, eval_rows = side_by_side([(r.label, r.run_dir) for r in runs], m.workspace)
    if args.plot:
        out = Path(args.plot).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        compare.curves_figure(runs, title=" vs ".join(r.label for r in runs)).write_html(out, include_plotlyjs=True)
        print(f"curves written to {out}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "runs": [{"id": r.id, "label": r.label, "kind": r.kind, "status": r.status} for r in runs],
            "config_diff": [{"key": k, "values": v} for k, v in compare.config_diff(runs)],
            "metrics": {r.label: compare.final_values(r.records) for r in runs},
            "evaluation": [dict(zip(eval_headers, row, strict=True)) for row in eval_rows],
        }, ensure_ascii=False, indent=1, default=str))
        return 0
    for r in runs:
        print(f"{r.label}: {r.id} ({r.kind}, {r.status})")
    diff_headers, diff_rows = compare.diff_table(runs)
    print("\nconfig (changed keys only):")
    print(text_table(diff_headers, diff_rows) if diff_rows else "  the configs are the same")
    print("\nfinal metrics:")
    print(text_table(*compare.metrics_table(runs)))
    print("\nevaluation:")
    print(text_table(eval_headers, eval_rows) if eval_rows else "  no evaluation results in these runs")
    return 0
