"""Benchmark of the whole-dataset operations (issue 17): peak memory and time of split / dedupe / stats / export on a
~230 MB JSONL dataset, and of format detection on a JSON array of the same rows, ours against a baseline commit.

Each operation runs in a fresh Python process (the workspace API the Data tab and the CLI call); its peak resident
memory is the child's own `ru_maxrss` from `os.wait4`, its time the wall clock of the call (imports excluded, the
process's start included in neither). `floor` is a process that only imports the modules: what any of them costs
before reading a row. The baseline is the code at `--baseline` (default 8e45c1f, before streaming), checked out in a
temporary git worktree that is removed afterwards; both versions read the same files.

The data: rows shaped like instruction data (instruction 25-250 characters, answer 50-750, one in ten a multi-turn
conversation, a third of them traces sharing a question_id, one instruction in five repeated; ~500 bytes a row),
written with a fixed seed until the file reaches --mb megabytes.

Run: .venv/bin/python bench/data.py [--mb 230] [--baseline 8e45c1f] [--only split,dedupe,...] [--keep DIR]
     .venv/bin/python bench/data.py --tiny --no-baseline   # ~4M rows of ~60 bytes: the digests spill to disk
Prints `name: ours / baseline = ratio` lines (peak MB, then seconds) and a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

SETUP = """
import json, sys, time
sys.path.insert(0, {code!r})
from core.workspace import Workspace
ws = Workspace.open({ws!r})
"""
OPS = {  # name -> (imports, the timed call)
    "floor": ("import core.data.ops, core.data.stats, core.data.convert, core.data.store", "pass"),
    "split": ("from core.data.ops import split_dataset", "split_dataset(ws, 'big', 0.1, 42)"),
    "dedupe": ("from core.data.ops import dedupe_dataset", "dedupe_dataset(ws, 'big', 'instruction')"),
    "stats": ("from core.data.stats import dataset_stats", "dataset_stats(ws, 'big')"),
    "export": ("from core.data.convert import export_dataset", "export_dataset(ws, 'big', 'messages')"),
    "detect": ("from core.data.store import detect_file", "detect_file({array!r})"),
}


def make_rows(target_bytes: int, jsonl: Path, array: Path, tiny: bool = False) -> tuple[int, int]:
    """Write the dataset as canonical JSONL (a workspace dataset) and as a JSON array; returns (rows, bytes).
    `tiny`: rows of ~60 bytes (millions of rows: what the digests of duplicates cost, spilled to disk)."""
    rng = random.Random(0)
    if tiny:
        return _tiny_rows(target_bytes, jsonl, array, rng)
    words = [f"w{i}" for i in range(5000)] + ["the", "of", "and", "to", "a", "in", "是", "的", "数据"]
    instructions: list[str] = []
    n = size = 0
    with open(jsonl, "w", encoding="utf-8") as fj, open(array, "w", encoding="utf-8") as fa:
        fa.write("[\n")
        while size < target_bytes:
            if instructions and rng.random() < 0.2:
                ins = rng.choice(instructions)
            else:
                ins = " ".join(rng.choices(words, k=rng.randint(5, 40)))
                if len(instructions) < 50_000:
                    instructions.append(ins)
            row: dict = {"id": f"r{n}", "instruction": ins,
                         "output": " ".join(rng.choices(words, k=rng.randint(10, 120)))}
            if rng.random() < 0.33:
                row["question_id"] = f"q{n // 4}"
            if rng.random() < 0.1:
                row["messages"] = [{"role": "user", "content": ins}, {"role": "assistant", "content": row["output"]},
                                   {"role": "user", "content": "and then?"}, {"role": "assistant", "content": "ok"}]
            line = json.dumps(row, ensure_ascii=False)
            fj.write(line + "\n")
            fa.write(("," if n else "") + line + "\n")
            size += len(line.encode("utf-8")) + 1
            n += 1
        fa.write("]\n")
    return n, size


def _tiny_rows(target_bytes: int, jsonl: Path, array: Path, rng: random.Random) -> tuple[int, int]:
    n = size = 0
    with open(jsonl, "w", encoding="utf-8") as fj, open(array, "w", encoding="utf-8") as fa:
        fa.write("[\n")
        while size < target_bytes:
            line = json.dumps({"id": f"r{n}", "instruction": f"w{rng.randint(0, 10**7)} w{rng.randint(0, 99)}",
                               "output": f"w{rng.randint(0, 999)}"})
            fj.write(line + "\n")
            fa.write(("," if n else "") + line + "\n")
            size += len(line) + 1
            n += 1
        fa.write("]\n")
    return n, size


def run_op(code: Path, ws: Path, op: str, array: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds of the call) of `op` in a fresh process running the code at `code`."""
    imports, call = OPS[op]
    script = SETUP.format(code=str(code), ws=str(ws)) + imports + "\nt = time.perf_counter()\n" + \
        call.format(array=str(array)) + "\nprint(json.dumps({'s': time.perf_counter() - t}))\n"
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_WAIT_POLICY": "PASSIVE"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([PY, "-c", script], cwd=code, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak, not the largest of all children so far
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise RuntimeError(f"{op} failed:\n{err.read()[-3000:]}")
        return usage.ru_maxrss / 1024, json.loads(out.read().strip().splitlines()[-1])["s"]


def clean_outputs(ws: Path) -> None:
    for p in (ws / "datasets").iterdir():
        if p.name.startswith("big.") or p.name == "big.jsonl":
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def baseline_tree(ref: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), ref], check=True,
                   capture_output=True)
    return where


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=230.0, help="size of the JSONL file (MB)")
    ap.add_argument("--baseline", default="8e45c1f", help="git commit to compare against")
    ap.add_argument("--only", default=",".join(OPS), help="comma-separated operations")
    ap.add_argument("--keep", help="make the data in this folder and keep it (reused when it is there)")
    ap.add_argument("--tiny", action="store_true", help="rows of ~60 bytes (millions of rows) instead of ~500")
    ap.add_argument("--no-baseline", action="store_true", help="measure ours only (the baseline may need GBs)")
    args = ap.parse_args()
    ops = [o for o in args.only.split(",") if o in OPS]
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    data = Path(args.keep) if args.keep else tmp / "data"
    ws = data / "ws"
    (ws / "datasets").mkdir(parents=True, exist_ok=True)
    jsonl, array = ws / "datasets" / "big.jsonl", data / "big-array.json"
    if not (jsonl.exists() and array.exists()):
        t = time.perf_counter()
        rows, size = make_rows(int(args.mb * 1e6), jsonl, array, args.tiny)
        (ws / "datasets" / "big.meta.json").write_text(json.dumps({"name": "big", "rows": rows, "format": "canonical",
                                                                 "created_by": "bench"}))
        print(f"# data: {rows:,} rows, {size / 1e6:.0f} MB JSONL + JSON array in {time.perf_counter() - t:.0f} s")
    else:
        print(f"# data: reused {jsonl} ({jsonl.stat().st_size / 1e6:.0f} MB)")
    old = tmp / "baseline"
    results: dict[str, dict[str, tuple[float, float]]] = {}
    versions = [("ours", ROOT)] + ([] if args.no_baseline else [("baseline", old)])
    try:
        if not args.no_baseline:
            baseline_tree(args.baseline, old)
        for op in ops:
            results[op] = {}
            for who, code in versions:
                clean_outputs(ws)
                results[op][who] = run_op(code, ws, op, array)
                mb, s = results[op][who]
                print(f"#   {op:7s} {who:9s} peak {mb:7.0f} MB  {s:7.2f} s", flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(old, ignore_errors=True)
            clean_outputs(ws)
    if args.no_baseline:
        return 0
    print()
    for op, r in results.items():
        (m1, s1), (m0, s0) = r["ours"], r["baseline"]
        print(f"{op} peak MB: {m1:.0f} / {m0:.0f} = {m1 / m0:.2f}")
        if op != "floor":
            print(f"{op} seconds: {s1:.2f} / {s0:.2f} = {s1 / max(s0, 1e-9):.2f}")
    print("\n| operation | peak RSS ours | baseline | ratio | time ours | baseline | ratio |")
    print("|---|---|---|---|---|---|---|")
    for op, r in results.items():
        (m1, s1), (m0, s0) = r["ours"], r["baseline"]
        print(f"| {op} | {m1:.0f} MB | {m0:.0f} MB | {m1 / m0:.2f} | {s1:.2f} s | {s0:.2f} s | "
              f"{s1 / max(s0, 1e-9):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
