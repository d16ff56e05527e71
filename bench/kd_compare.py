"""A controlled comparison of distillation methods on the demo pair at equal time (issue 14): `bench/kd.py --compare`.

The offline demo pair (SmolLM2-135M-Instruct and the 15-layer student derived from it, `easydistill models
prepare-demo`), the same teacher-labelled rows for every method, the same time budget for every method's training:

- SFT                      train_sft on the teacher's answers (black-box KD)
- KD <divergence>          train_kd from the teacher's cached top-k log-probs, each divergence the studio offers
                           (forward_kl, reverse_kl, jsd, skew_kl, skew_reverse_kl, tv), λ = the preset's kd_ratio
- SFT → KD                 train_sft for half the budget, then train_kd (forward KL) from it for the other half
- GKD (on-policy)          train_onpolicy, trainer gkd (TRL's experimental GKDTrainer)
- Distillation (on-policy) train_onpolicy, trainer distillation (TRL's DistillationTrainer)

Every method starts from the derived student and trains through the studio's own job code (the entries' `build`, then
`core.train.common.train_and_publish`, as `easydistill` runs them) with a TimeBudgetCallback (core/train/callbacks.py)
added: training stops at the first optimizer step that finds the budget spent, and the learning-rate schedule
(warm-up, then cosine to zero) is laid over the budget, not over a step count, so every method ends its schedule
whatever its steps cost. Loading models and data and saving the result are outside the budget (timed and shown).
Shared knobs (batch, learning rate, sequence length, precision, KD's λ and top-k, evaluation's top-k) are read from
presets/demo-cpu.yaml (its SFT step, or its KD step when it trains by KD alone, as it does since bench/demo_sweep.py),
so the bench follows what the demo runs; the second phase of SFT → KD uses the preset's KD learning rate.

Data: the teacher labels the first --rows bundled instructions (assets/demo/instructions.json) and --heldout held-out
ones (assets/demo/heldout.json) with the preset's label settings (synth jobs), and a capture job stores its top-k over
the training rows. They are kept in the workspace (datasets kd-compare-train / kd-compare-heldout, cache
kd-compare-train-k<k>) and reused by the next run with the same settings; their time is printed apart.

One evaluate job then scores every student, the untrained student and the teacher itself against the teacher
(core.eval: held-out KL(teacher ‖ student) at the preset's top-k, perplexity of the teacher's held-out answers,
ROUGE-L F1 of the greedy answer against them), and the first --samples held-out answers of each are printed.

    .venv/bin/python bench/kd.py --compare [--budget 40] [--clock wall|cpu] [--rows 96] [--heldout 30]
        [--methods sft,kd-forward_kl,...] [--workspace artifacts/demo-workspace] [--out artifacts/kd-compare.json]
    .venv/bin/python bench/kd.py --compare --from-json artifacts/kd-compare.json [--chars 220] [--samples 3]

--from-json prints the report of a saved run again (markdown, as the run printed it), without training: the paired
column is recomputed from the per-row metrics the JSON keeps ("rows", written since ea33b7f); older JSONs lack them.

Trained students are written to the workspace as kd-compare-<method> and removed after the evaluation (--keep keeps
them). Runs on the CPU (the machine this was written for has 2 cores); the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

PRESET = ROOT / "presets" / "demo-cpu.yaml"
DEFAULT_WS = ROOT / "artifacts" / "demo-workspace"
PREFIX = "kd-compare"
DIVERGENCES = ("forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tv")
METHODS = ("sft", *(f"kd-{d}" for d in DIVERGENCES), "sft-kd", "gkd", "distillation")
LABELS = {"sft": "SFT", **{f"kd-{d}": f"KD {d}" for d in DIVERGENCES}, "sft-kd": "SFT → KD (forward_kl)",
          "gkd": "GKD (on-policy)", "distillation": "DistillationTrainer (on-policy)"}
METHOD_OF = {v: k for k, v in LABELS.items()}  # a saved table's label -> its method (JSONs without "method")
# the knobs of the preset's SFT step (its KD step when it has none) every method shares (the rest are the bench's:
# budget, no checkpoints, no eval)
SHARED = ("per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "warmup_ratio", "max_length",
          "precision", "group_by_length", "lr_scheduler_type", "weight_decay", "seed")
STEP_CAP = 100_000  # max_steps: only a cap, the budget ends training
EVAL_BATCH = 32  # rows per generate() in the evaluation: the 30 held-out rows in one batch


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------- the preset


@dataclass
class Preset:
    """What the bench takes from presets/demo-cpu.yaml (each step found by its job kind, not its position)."""

    label: dict  # the synth label step of the training instructions
    label_heldout: dict
    sft: dict
    kd: dict
    capture: dict = field(default_factory=dict)
    evaluate: dict = field(default_factory=dict)


def read_preset(path: Path = PRESET) -> Preset:
    import yaml

    steps = [s["job"] for s in yaml.safe_load(path.read_text(encoding="utf-8"))["job"]["steps"]]

    def first(kind: str, cond=lambda j: True) -> dict:
        return next((dict(j) for j in steps if j.get("kind") == kind and cond(j)), {})

    label = first("synth", lambda j: "instructions" in str(j.get("input")))
    held = first("synth", lambda j: "heldout" in str(j.get("input"))) or label
    return Preset(label, held, first("train_sft"), first("train_kd"), first("capture"), first("evaluate"))


def shared_knobs(p: Preset) -> dict:
    src = p.sft or p.kd  # the demo preset trains by KD alone since the seed sweep (bench/demo_sweep.py)
    out = {k: src[k] for k in SHARED if k in src}
    out.setdefault("max_length", 256)
    return out


# ---------------------------------------------------------------------------------------------------- jobs


def context(ws, runs: Path, job: str):
    from core.jobs.context import JobContext

    (runs / job).mkdir(parents=True, exist_ok=True)
    return JobContext(job_id=f"{PREFIX}-{job}", run_dir=runs / job, workspace=ws, devices=["cpu"])


def run_job(config, ctx) -> None:
    """A job's own entry, in this process (what the worker calls)."""
    from core.jobs.launch import resolve_entry

    resolve_entry(config)(config, ctx)


def data_settings(p: Preset, rows: int, heldout: int) -> dict:
    """What decides the data (not how fast it is made: batch sizes are left out)."""
    return {"rows": rows, "heldout": heldout, "teacher": (p.label.get("teacher") or {}).get("model"),
            "system_prompt": [p.label.get("system_prompt"), p.label_heldout.get("system_prompt")],
            "sampling": [p.label.get("sampling"), p.label_heldout.get("sampling")],
            "top_k": p.capture.get("top_k", 10), "max_length": shared_knobs(p)["max_length"]}


def prepare_data(ws, runs: Path, p: Preset, rows: int, heldout: int, relabel: bool) -> dict:
    """Label the training and held-out rows and capture the teacher's top-k (or reuse them from an earlier run)."""
    from core.config.data_jobs import CaptureJob, SynthJob
    from core.models.demo import STUDENT_NAME

    settings = data_settings(p, rows, heldout)
    marker = ws.cache / PREFIX / "data.json"
    names = {"train": f"{PREFIX}-train", "heldout": f"{PREFIX}-heldout",
             "cache": f"{PREFIX}-train-k{settings['top_k']}"}
    files = [ws.datasets / f"{names['train']}.jsonl", ws.datasets / f"{names['heldout']}.jsonl",
             ws.cache / names["cache"]]
    if not relabel and marker.is_file() and all(f.exists() for f in files):
        kept = json.loads(marker.read_text(encoding="utf-8"))
        if kept.get("settings") == settings:
            say(f"data: reusing {names['train']} ({rows} rows), {names['heldout']} ({heldout}) and {names['cache']} "
                f"(labelled in {kept['label_s']:.0f} s, captured in {kept['capture_s']:.0f} s)")
            return {**kept, "names": names, "reused": True}
    for f in files:
        shutil.rmtree(f) if f.is_dir() else f.unlink(missing_ok=True)
        for extra in (f.with_name(f.stem + ".rejects.jsonl"), f.with_name(f.stem + ".meta.json")):
            extra.unlink(missing_ok=True)
    t0 = time.time()
    for step, src, name, n in ((p.label, "instructions.json", names["train"], rows),
                               (p.label_heldout, "heldout.json", names["heldout"], heldout)):
        job = {k: v for k, v in step.items() if k not in ("capture", "name")}  # labelling only: capture is separate
        job.update(input=str(ROOT / "assets" / "demo" / src), output=name, limit=n, gpus="cpu")
        say(f"data: the teacher labels {n} rows of {src}")
        run_job(SynthJob(**job), context(ws, runs, f"label-{name}"))
    label_s = time.time() - t0
    t0 = time.time()
    cap = {k: v for k, v in p.capture.items() if k not in ("name",)}
    cap.update(kind="capture", input=names["train"], output=names["cache"], student=STUDENT_NAME, gpus="cpu",
               top_k=settings["top_k"], max_length=settings["max_length"])
    cap.setdefault("teacher", p.label.get("teacher"))
    say(f"data: capturing the teacher's top-{settings['top_k']} over {names['train']}")
    run_job(CaptureJob(**cap), context(ws, runs, "capture"))
    capture_s = time.time() - t0
    kept = {"settings": settings, "label_s": label_s, "capture_s": capture_s}
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(kept, indent=2), encoding="utf-8")
    return {**kept, "names": names, "reused": False}


@dataclass
class Trained:
    method: str
    model: str
    steps: list[int]
    train_s: list[float]  # wall seconds of training (per phase)
    train_cpu_s: list[float]  # CPU seconds of training (per phase)
    cpu_s: float  # process CPU seconds of the whole job(s), loading and saving included
    job_s: float  # wall seconds of the whole job(s)
    load_before: float


def train_budgeted(module, config, ctx, budget: float, clock: str) -> tuple[int, float, float]:
    """The job's own build(), a TimeBudgetCallback added, then the same train-and-publish its run() does.
    Returns (optimizer steps, wall seconds of training, CPU seconds of training)."""
    from transformers import TrainerCallback

    from core.train import common
    from core.train.callbacks import TimeBudgetCallback

    class Clocks(TrainerCallback):  # both clocks around the training loop, whichever the budget counts
        def on_train_begin(self, *a, **k):
            self.t0, self.c0 = time.monotonic(), time.process_time()

        def on_train_end(self, *a, **k):
            self.wall, self.cpu = time.monotonic() - self.t0, time.process_time() - self.c0

    trainer, tokenizer, callback, student_path = module.build(config, ctx)
    budget_cb, clocks = TimeBudgetCallback(budget, clock=clock, warmup=config.warmup_ratio), Clocks()
    trainer.add_callback(budget_cb)
    trainer.add_callback(clocks)
    method = {"train_sft": "sft", "train_kd": "kd", "train_onpolicy": "onpolicy"}[config.kind]
    common.train_and_publish(trainer, ctx, config, tokenizer, callback, method, student_path)
    del trainer, callback
    gc.collect()
    return budget_cb.steps, clocks.wall, clocks.cpu


def train_method(ws, runs: Path, p: Preset, method: str, data: dict, budget: float, clock: str,
                 seed: int | None = None) -> Trained:
    from core.config.train import KdJob, OnPolicyKdJob, SftJob
    from core.models.demo import STUDENT_NAME, TEACHER_NAME
    from core.train import kd, onpolicy, sft

    knobs = shared_knobs(p) | ({"seed": seed} if seed is not None else {})
    common = {**knobs, "dataset": data["names"]["train"], "max_steps": STEP_CAP, "save_steps": STEP_CAP,
              "save_total_limit": 1, "logging_steps": 1, "gpus": "cpu"}
    kd_knobs = {"teacher": TEACHER_NAME, "logits": data["names"]["cache"], "kd_ratio": p.kd.get("kd_ratio", 0.5)}
    out = f"{PREFIX}-{method}"
    t0, c0, la = time.time(), time.process_time(), os.getloadavg()[0]
    steps: list[int] = []
    spent: list[float] = []
    spent_cpu: list[float] = []

    def go(module, config, job: str, seconds: float) -> None:
        s, wall, cpu = train_budgeted(module, config, context(ws, runs, job), seconds, clock)
        steps.append(s)
        spent.append(wall)
        spent_cpu.append(cpu)

    if method == "sft":
        go(sft, SftJob(**common, student=STUDENT_NAME, output=out), method, budget)
    elif method.startswith("kd-"):
        go(kd, KdJob(**common, **kd_knobs, student=STUDENT_NAME, output=out, divergence=method[3:]), method, budget)
    elif method == "sft-kd":
        half = f"{PREFIX}-sft-half"
        go(sft, SftJob(**common, student=STUDENT_NAME, output=half), "sft-half", budget / 2)
        kd_common = {**common, "learning_rate": p.kd.get("learning_rate", common.get("learning_rate"))}
        go(kd, KdJob(**kd_common, **kd_knobs, student=half, output=out, divergence="forward_kl"), method, budget / 2)
        shutil.rmtree(ws.models / half, ignore_errors=True)
    elif method in ("gkd", "distillation"):
        go(onpolicy, OnPolicyKdJob(**common, teacher=TEACHER_NAME, student=STUDENT_NAME, output=out, trainer=method,
                                   max_new_tokens=p.label.get("sampling", {}).get("max_new_tokens", 128)),
           method, budget)
    else:
        raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return Trained(method, out, steps, spent, spent_cpu, time.process_time() - c0, time.time() - t0, la)


def evaluate(ws, runs: Path, p: Preset, data: dict, students: list[tuple[str, str]], samples: int) -> tuple[dict, list]:
    """One evaluate job: every student against the teacher on the held-out teacher answers."""
    from core.config.train import EvaluateJob
    from core.eval import results
    from core.models.demo import TEACHER_NAME

    spec = {"type": "transformers", "batch_size": EVAL_BATCH}
    max_new = (p.label_heldout.get("sampling") or {}).get("max_new_tokens", 128)
    config = EvaluateJob(
        name=f"{PREFIX}-evaluate", dataset=data["names"]["heldout"], gpus="cpu",
        students=[{**spec, "model": model} for _, model in students], reference={**spec, "model": TEACHER_NAME},
        metrics=["kl", "perplexity", "rouge_l"], responses="dataset", top_k=p.evaluate.get("top_k", 50),
        sampling={"temperature": 0.0, "max_new_tokens": max_new, "seed": None},
    )
    ctx = context(ws, runs, "evaluate")
    run_job(config, ctx)
    doc = json.loads((ctx.output_dir / results.RESULTS_FILE).read_text(encoding="utf-8"))
    rows = [json.loads(x) for x in (ctx.output_dir / results.ROWS_FILE).read_text(encoding="utf-8").splitlines()
            if x.strip()]
    return doc, rows


def per_row(rows: list[dict], role: str) -> dict[str, dict[str, float | None]]:
    """Each held-out row's KL, perplexity and ROUGE-L of one evaluated model (core.eval's rows.jsonl keys)."""
    from core.eval import results

    return {r["id"]: {"kl": r.get(f"{results.prefix(role)}kl"), "perplexity": r.get(f"{role}_perplexity"),
                      "rouge_l": r.get(f"{role}_rouge_l")} for r in rows}


def paired(mine: dict, base: dict, key: str, lower: bool) -> str:
    """On how many held-out rows a model beats the baseline (a paired view: differences across prompts)."""
    both = [(m[key], base[i][key]) for i, m in mine.items() if i in base and m[key] is not None
            and base[i][key] is not None]
    wins = sum((a < b) if lower else (a > b) for a, b in both)
    return f"{wins}/{len(both)}" if both else "–"


# ---------------------------------------------------------------------------------------------------- report


def add_paired(table: list[dict], rows_by_role: dict[str, dict]) -> None:
    """Each trained method's paired column against SFT (`vs_sft`), from the per-row metrics of every role."""
    base = next((r["role"] for r in table if r.get("method", METHOD_OF.get(r["label"])) == "sft"), None)
    if not base or not rows_by_role.get(base):
        return
    for r in table:
        if r["role"] != base and r["steps"] != "–" and rows_by_role.get(r["role"]):
            r["vs_sft"] = {k: paired(rows_by_role[r["role"]], rows_by_role[base], k, k != "rouge_l")
                           for k in ("kl", "perplexity", "rouge_l")}


def report(rows_out: list[dict], samples: list[dict], roles: list[tuple[str, str]], budget: float, clock: str,
           chars: int) -> str:
    with_paired = any(r.get("vs_sft") for r in rows_out)
    lines = [f"| method | optimizer steps in {budget:g} s ({clock}) | training s wall / CPU | job s (load + train + "
             "save) | held-out KL to teacher ↓ | perplexity on teacher answers ↓ | ROUGE-L vs teacher answers ↑ |"
             + (" held-out rows better than SFT: KL / ppl / ROUGE-L |" if with_paired else ""),
             "|---|---|---|---|---|---|---|" + ("---|" if with_paired else "")]

    def f(r: dict, key: str, fmt: str) -> str:
        return format(r[key], fmt) if isinstance(r.get(key), (int, float)) else "–"

    for r in rows_out:
        spent = f"{sum(r['train_s']):.0f} / {sum(r['train_cpu_s']):.0f}" if r.get("train_s") else "–"
        vs = " / ".join(r["vs_sft"].values()) if r.get("vs_sft") else "–"
        lines.append(f"| {r['label']} | {r['steps']} | {spent} | {r['job']} | {f(r, 'kl', '.3f')} | "
                     f"{f(r, 'perplexity', '.2f')} | {f(r, 'rouge_l', '.3f')} |" + (f" {vs} |" if with_paired else ""))
    text = "\n".join(lines)
    if not with_paired:
        text += ("\n\nNo paired column: the per-row metrics of every model are not in these results (a JSON written "
                 "before bench/kd_compare.py kept them, or no SFT row), so rows better than SFT cannot be counted.")
    for i, row in enumerate(samples, 1):
        text += f"\n\n**Sample {i}.** {row['prompt']}\n\n- teacher (held-out answer): {clip(row.get('gold'), chars)}"
        for label, role in roles:
            text += f"\n- {label}: {clip(row.get(f'{role}_answer'), chars)}"
    return text


def from_json(path: str | Path, chars: int, samples: int | None = None) -> str:
    """The report of a saved run (its --out JSON), with no training or evaluation: the head line, the table (the
    paired column recomputed when the JSON has the per-row metrics) and the sample answers."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    args, table = doc.get("args", {}), doc["table"]
    add_paired(table, doc.get("rows") or {})
    shown = doc.get("samples", [])[: samples if samples is not None else None]
    roles = [(r["label"], r["role"]) for r in table]
    return doc.get("head", "") + "\n\n" + report(table, shown, roles, args.get("budget", 0), args.get("clock", "?"),
                                                  chars)


def clip(text: Any, chars: int) -> str:
    s = " ".join(str(text or "").split())
    return repr(s if len(s) <= chars else s[: chars - 1] + "…")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench/kd.py --compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=40.0, help="training seconds per method (SFT → KD: half each)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="what the budget counts: wall time, or this process's CPU time (a shared machine)")
    ap.add_argument("--rows", type=int, default=96, help="teacher-labelled training rows (same for every method)")
    ap.add_argument("--heldout", type=int, default=30, help="held-out rows (assets/demo/heldout.json has 30)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from: {', '.join(METHODS)}")
    ap.add_argument("--samples", type=int, default=3, help="held-out answers shown per method")
    ap.add_argument("--chars", type=int, default=220, help="characters shown of each sample answer")
    ap.add_argument("--workspace", default=str(DEFAULT_WS), help="where the demo pair is (prepared there if not)")
    ap.add_argument("--relabel", action="store_true", help="label and capture again even if the data is there")
    ap.add_argument("--keep", action="store_true", help="keep the trained students in the workspace")
    ap.add_argument("--no-teacher-row", action="store_true", help="do not evaluate the teacher's own greedy answers")
    ap.add_argument("--seed", type=int, default=None, help="training seed of every method (default: the preset's)")
    ap.add_argument("--no-eval", action="store_true", help="train only (steps and times; no metrics)")
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "kd-compare.json"), help="results as JSON")
    ap.add_argument("--from-json", metavar="PATH", help="print the report (markdown) of a saved --out JSON; no run")
    a = ap.parse_args(argv)
    if a.from_json:
        print(from_json(a.from_json, a.chars, a.samples), flush=True)
        return
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")

    from core.models.demo import STUDENT_NAME, TEACHER_NAME, prepare_demo
    from core.workspace import Workspace

    t_start = time.time()
    load_start = load()
    say(f"start: {load_start} on {os.cpu_count()} CPU(s); budget {a.budget:g} s ({a.clock}) per method")
    ws = Workspace.open(a.workspace)
    prepare_demo(ws, say=lambda m, i, n: say(f"demo pair [{i}/{n}] {m}"))
    p = read_preset()
    for m in METHODS:  # an earlier run's leftovers (a bench that stopped before cleaning up)
        shutil.rmtree(ws.models / f"{PREFIX}-{m}", ignore_errors=True)
    trained: list[Trained] = []
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-") as tmp:
        runs = Path(tmp)
        data = prepare_data(ws, runs, p, a.rows, a.heldout, a.relabel)
        t_train = time.time()
        for m in methods:
            say(f"{LABELS[m]}: training for {a.budget:g} s ({load()})")
            t = train_method(ws, runs, p, m, data, a.budget, a.clock, a.seed)
            say(f"{LABELS[m]}: {' + '.join(map(str, t.steps))} step(s) in {sum(t.train_s):.0f} s of training "
                f"({sum(t.train_cpu_s):.0f} CPU s), job {t.job_s:.0f} s")
            trained.append(t)
        train_s = time.time() - t_train
        roles = [("student before training", STUDENT_NAME)] + [(LABELS[t.method], t.model) for t in trained]
        if not a.no_teacher_row:
            roles.append(("teacher (its own greedy answers)", TEACHER_NAME))
        t_eval = time.time()
        doc: dict = {}
        eval_rows: list[dict] = []
        if not a.no_eval:
            say(f"evaluate: {len(roles)} models against the teacher on {a.heldout} held-out rows ({load()})")
            doc, eval_rows = evaluate(ws, runs, p, data, roles, a.samples)
        eval_s = time.time() - t_eval
    if not a.keep:
        for t in trained:
            shutil.rmtree(ws.models / t.model, ignore_errors=True)

    from core.eval import results

    summary = doc.get("summary", {})
    by_role = [(label, results.student_role(i)) for i, (label, _) in enumerate(roles)]
    table = []
    for (label, role), t in zip(by_role, [None, *trained, None], strict=False):
        s = summary.get(role, {})
        table.append({"label": label, "role": role, "method": t.method if t else None,
                      "steps": " + ".join(map(str, t.steps)) if t else "–",
                      "train_s": t.train_s if t else None, "train_cpu_s": t.train_cpu_s if t else None,
                      "job": f"{t.job_s:.0f}" if t else "–", "job_cpu_s": t.cpu_s if t else None,
                      "load_before": t.load_before if t else None,
                      **{k: s.get(k) for k in ("kl", "perplexity", "rouge_l")}})
    rows_by_role = {role: per_row(eval_rows, role) for _, role in by_role}
    add_paired(table, rows_by_role)
    text = report(table, eval_rows[: a.samples], by_role, a.budget, a.clock, a.chars)
    load_end = load()
    total = time.time() - t_start
    data_note = ("reused from an earlier run" if data["reused"] else "labelled now") + \
        f": labelling {data['label_s']:.0f} s, capture {data['capture_s']:.0f} s"
    cpu = time.process_time()
    head = (f"== KD comparison: {STUDENT_NAME} from {TEACHER_NAME}, {a.rows} teacher-labelled rows, {a.heldout} "
            f"held out; {a.budget:g} s ({a.clock}) of training per method; data {data_note}; training {train_s:.0f} s "
            f"all methods, evaluation {eval_s:.0f} s; total {total:.0f} s wall, {cpu:.0f} s CPU ==\n"
            f"at start: {load_start}; at end: {load_end}; {os.cpu_count()} CPU(s)")
    print("\n" + head + "\n\n" + text, flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"head": head, "args": vars(a), "table": table, "samples": eval_rows[: a.samples],
                               "rows": rows_by_role,
                               "summary": summary, "notes": doc.get("notes"), "data": {k: v for k, v in data.items()},
                               "total_s": total}, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    say(f"results written to {out}")


if __name__ == "__main__":
    main()
