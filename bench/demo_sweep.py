"""Spread and levers of the demo's quality (issue 14): the demo preset re-run with other label seeds and other
training variants, one workspace per seed, several at once.

    .venv/bin/python bench/demo_sweep.py --seeds 7,21,42 --variants base,kd1,kdonly --parallel 3 --out sweep.json

Per seed: one fresh workspace and one pipeline made from the preset (`easydistill --workspace WS --config CFG`, as a
user runs it): prepare, label (with that sampling seed), label-heldout (the preset's own seed, so every workspace
scores against the same held-out answers on one machine: their digest is printed to show it), eval-before, capture,
then each variant's training (the knobs of the preset's KD step, with the variant's steps, learning rate and
kd_ratio; --steps-scale scales the steps) and an evaluation of its student. Variants:
  base     the former preset: SFT 150 steps (lr 3e-4) -> KD 150 (lr 1e-4, kd_ratio 0.5)
  kd1      base's SFT student -> KD 150 with kd_ratio 1.0
  kdlr     base's SFT student -> KD 150 with lr 3e-4
  kdonly   the derived student -> KD 300 (lr 3e-4, kd_ratio 0.5): no SFT stage
  kdonly1  the derived student -> KD 300 (lr 3e-4, kd_ratio 1.0): the preset since this sweep
  kdonly1hi  the same with lr 6e-4
  sft300   the derived student -> SFT 300 (lr 3e-4): no KD stage
(kd1 and kdlr need base's SFT student: base is added when they are asked for without it.)
Printed: per variant, the held-out KL to the teacher and the perplexity on its answers for each seed, with their
mean and standard deviation over seeds; --out writes the same as JSON. --rows / --steps-scale shrink a run for a smoke
test. On a GPU machine the jobs use CUDA (the preset's CPU settings otherwise); absolute figures then differ from a
CPU run's, the spread over seeds and the ranking of the variants are what this measures.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "presets" / "demo-cpu.yaml"
DEFAULT_GGUF_FROM = ROOT / "artifacts" / "demo-workspace"
VARIANTS = ("base", "kd1", "kdlr", "kdonly", "kdonly1", "kdonly1hi", "sft300")


def _steps(job: dict) -> dict[str, dict]:
    return {s["name"]: s["job"] for s in job["steps"]}


def _scaled(job: dict, scale: float, **over) -> dict:
    """A copy of a training step's job with `over` applied and its step counts scaled."""
    out = {**copy.deepcopy(job), **over}
    for key in ("max_steps", "save_steps", "eval_steps"):
        if key in out:
            out[key] = max(2, round(out[key] * scale))
    return out


# The variants' training, as (name, kind, student, overrides of the KD step's knobs). "sft" = the SFT output of
# "base"; "raw" = the derived student. Step counts are the former preset's 150 per stage (300 for one stage alone).
RECIPES: dict[str, list[tuple[str, str, str, dict]]] = {
    "base": [("sft", "train_sft", "raw", {"max_steps": 150, "learning_rate": 3.0e-4, "eval_steps": 75}),
             ("kd", "train_kd", "sft", {"max_steps": 150, "learning_rate": 1.0e-4, "kd_ratio": 0.5,
                                         "eval_steps": 75})],
    "kd1": [("kd1", "train_kd", "sft", {"max_steps": 150, "learning_rate": 1.0e-4, "kd_ratio": 1.0})],
    "kdlr": [("kdlr", "train_kd", "sft", {"max_steps": 150, "learning_rate": 3.0e-4, "kd_ratio": 0.5})],
    "kdonly": [("kdonly", "train_kd", "raw", {"max_steps": 300, "learning_rate": 3.0e-4, "kd_ratio": 0.5})],
    "kdonly1": [("kdonly1", "train_kd", "raw", {"max_steps": 300, "learning_rate": 3.0e-4, "kd_ratio": 1.0})],
    "kdonly1hi": [("kdonly1hi", "train_kd", "raw", {"max_steps": 300, "learning_rate": 6.0e-4, "kd_ratio": 1.0})],
    "sft300": [("sft300", "train_sft", "raw", {"max_steps": 300, "learning_rate": 3.0e-4})],
}
SFT_KEYS = ("dataset", "eval_dataset", "per_device_train_batch_size", "gradient_accumulation_steps", "warmup_ratio",
            "max_length", "precision", "group_by_length", "save_steps", "eval_steps")


def pipeline(preset: dict, seed: int, variants: list[str], scale: float, instructions: Path) -> dict:
    """The sweep's pipeline for one label seed: the preset's steps up to its capture, then every variant."""
    s = _steps(preset["job"])
    ev = s["eval-before"]
    label = {**copy.deepcopy(s["label"]), "input": str(instructions)}
    label["sampling"] = {**label["sampling"], "seed": seed}
    heldout = {**copy.deepcopy(s["label-heldout"]), "input": str(ROOT / "assets" / "demo" / "heldout.json")}
    steps = [{"name": "prepare", "job": s["prepare"]}, {"name": "label", "job": label},
             {"name": "label-heldout", "job": heldout}, {"name": "eval-before", "job": ev},
             {"name": "capture", "job": s["capture"]}]
    kd = next(j for j in s.values() if j.get("kind") == "train_kd")  # the preset's KD step: data, cache, knobs
    students = {"raw": ev["model"]["model"], "sft": "demo-student-sft"}
    for variant in variants:
        for name, kind, student, over in RECIPES[variant]:
            base = kd if kind == "train_kd" else {"kind": kind, **{k: kd[k] for k in SFT_KEYS if k in kd}}
            job = _scaled(base, scale, **{"student": students[student], "output": f"demo-student-{name}",
                                          "save_steps": over["max_steps"], "eval_steps": over["max_steps"] // 2,
                                          **over})
            steps.append({"name": name, "job": job})
            steps.append({"name": f"eval-{name}", "job": {**ev, "model": {**ev["model"], "model": job["output"]}}})
    return {"kind": "pipeline", "name": f"demo-sweep-seed{seed}", "steps": steps}


def _digest(ws: Path, name: str) -> str:
    files = sorted((ws / "datasets").glob(f"{name}.jsonl"))
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12] if files else "-"


def run_seed(seed: int, cfg: dict, out: Path, gguf: Path | None, threads: int) -> dict:
    """Runs one seed's pipeline in its own fresh workspace; returns its evaluations and wall time."""
    ws = out / f"ws-seed{seed}"
    if cfg is None:  # --collect: what a run (perhaps stopped) left
        return collect(seed, ws, -1, 0.0)
    if ws.exists():
        shutil.rmtree(ws)
    if gguf is not None:
        (ws / "cache" / "smollm2").mkdir(parents=True)
        shutil.copy2(gguf, ws / "cache" / "smollm2" / gguf.name)
    path = out / f"seed{seed}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads), "TRL_EXPERIMENTAL_SILENCE": "1"}
    t0 = time.time()
    with open(out / f"seed{seed}.log", "w", encoding="utf-8") as log:
        rc = subprocess.call([sys.executable, "-m", "core.cli.main", "--workspace", str(ws), "--config", str(path)],
                             env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return collect(seed, ws, rc, time.time() - t0)


def collect(seed: int, ws: Path, rc: int, wall: float) -> dict:
    """The evaluations a seed's pipeline wrote, finished or not."""
    runs = sorted((ws / "runs").iterdir(), key=lambda p: p.stat().st_mtime) if (ws / "runs").exists() else []
    results: dict[str, dict] = {}
    for res in sorted(runs[-1].glob("output/eval-*/results.json")) if runs else []:
        summ = json.loads(res.read_text(encoding="utf-8")).get("summary", {})
        m = summ.get("model", {})
        results[res.parent.name.removeprefix("eval-")] = {"kl": m.get("kl"), "perplexity": m.get("perplexity")}
    return {"seed": seed, "exit": rc, "wall_s": round(wall, 1), "heldout": _digest(ws, "demo-heldout"),
            "results": results}


def _stat(xs: list[float]) -> str:
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f}"


def report(runs: list[dict]) -> list[dict]:
    order = ["before", "sft", "kd", *VARIANTS[1:]]
    names = sorted({n for r in runs for n in r["results"]}, key=lambda n: (order.index(n) if n in order else 99, n))
    print("\nheld-out answers per workspace (same digest = same answers):",
          ", ".join(f"seed {r['seed']}: {r['heldout']}" for r in runs))
    print("wall per pipeline:", ", ".join(f"seed {r['seed']}: {r['wall_s']:.0f} s (exit {r['exit']})" for r in runs))
    head = " | ".join(f"seed {r['seed']:>3} KL / ppl" for r in runs)
    print(f"\n{'variant':>8} | {head} | KL mean ± sd | ppl mean ± sd")
    rows = []
    for n in names:
        kls = [r["results"][n]["kl"] for r in runs if n in r["results"] and r["results"][n]["kl"] is not None]
        pps = [r["results"][n]["perplexity"] for r in runs
               if n in r["results"] and r["results"][n]["perplexity"] is not None]
        cells = [f"{r['results'][n]['kl']:.3f} / {r['results'][n]['perplexity']:5.2f}" if n in r["results"]
                 else "-" for r in runs]
        print(f"{n:>8} | " + " | ".join(f"{c:>18}" for c in cells) + f" | {_stat(kls)} | {_stat(pps)}")
        rows.append({"variant": n, "kl": kls, "perplexity": pps})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="7,21,42", help="label sampling seeds, one workspace each")
    ap.add_argument("--variants", default="base,kd1,kdonly", help=f"any of {', '.join(VARIANTS)}")
    ap.add_argument("--parallel", type=int, default=1, help="pipelines at once")
    ap.add_argument("--preset", default=str(PRESET))
    ap.add_argument("--gguf-from", default=str(DEFAULT_GGUF_FROM), help="workspace (or file) with the SmolLM2 GGUF")
    ap.add_argument("--rows", type=int, default=0, help="label only the first N instructions (smoke test)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="scale every training step count (smoke test)")
    ap.add_argument("--dir", default=str(ROOT / "artifacts" / "demo-sweep"), help="workspaces and logs go here")
    ap.add_argument("--out", default="", help="JSON of every figure")
    ap.add_argument("--collect", action="store_true", help="run nothing: report what the workspaces in --dir hold")
    args = ap.parse_args()

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise SystemExit(f"unknown variant(s) {bad}: choose from {', '.join(VARIANTS)}")
    if {"kd1", "kdlr"} & set(variants) and "base" not in variants:
        variants.insert(0, "base")
    out = Path(args.dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    src = Path(args.gguf_from)
    ggufs = [src] if src.is_file() else sorted((src / "cache" / "smollm2").glob("*.gguf"))
    instructions = ROOT / "assets" / "demo" / "instructions.json"
    if args.rows:
        rows = json.loads(instructions.read_text(encoding="utf-8"))[: args.rows]
        instructions = out / "instructions.json"
        instructions.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    preset = yaml.safe_load(Path(args.preset).read_text(encoding="utf-8"))
    seeds = [int(s) for s in args.seeds.split(",")]
    threads = max(1, (os.cpu_count() or 2) // max(1, args.parallel))
    print(f"{len(seeds)} seed(s) x variants {variants}, {args.parallel} at once, {threads} thread(s) each, in {out}")
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        runs = list(pool.map(lambda s: run_seed(
            s, None if args.collect else pipeline(preset, s, variants, args.steps_scale, instructions),
            out, ggufs[0] if ggufs else None, threads), seeds))
    rows = report(runs)
    print(f"\nall: {time.time() - t0:.0f} s wall")
    if args.out:
        Path(args.out).write_text(json.dumps({"seeds": seeds, "variants": variants, "steps_scale": args.steps_scale,
                                              "rows": args.rows, "runs": runs, "table": rows}, indent=2))


if __name__ == "__main__":
    main()
