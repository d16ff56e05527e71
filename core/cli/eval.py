"""`easydistill eval ...`: run an evaluation from flags, show its results, compare two runs, export a report.

An evaluation is an `evaluate` job like any other (also `easydistill --config eval.yaml`); these commands add the
views: the per-model table, the per-row drill-down, and the comparison of two runs (e.g. before/after distillation).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.cli.tables import text_table
from core.workspace import Workspace

METRIC_NAMES = ("exact_match", "math_verify", "judge_winrate", "kl", "perplexity", "rouge_l", "reward_model")


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate a model on a held-out set; show, compare and export results")
    es = ev.add_subparsers(dest="eval_command", metavar="ACTION", required=True)

    p = es.add_parser("run", help="submit an evaluate job from flags and follow it")
    p.add_argument("--model", required=True, action="append",
                   help="model to evaluate: workspace name, folder, or endpoint:<name>; repeat it to evaluate several "
                   "students against one reference in one job (the reference answers once)")
    p.add_argument("--dataset", required=True, help="held-out dataset: workspace name or file")
    p.add_argument("--metrics", default="exact_match",
                   help=f"comma-separated, from {', '.join(METRIC_NAMES)} (default exact_match)")
    p.add_argument("--reference", help="the model to compare against (usually the teacher)")
    p.add_argument("--judge", help="judge model for judge_winrate (workspace name, folder or endpoint:<name>)")
    p.add_argument("--reward-model", help="a trained reward model for reward_model (workspace name or folder)")
    p.add_argument("--limit", type=int, help="only the first N rows")
    p.add_argument("--answer-field", help="column with the gold answer (default: answer, gold, reference, solution, "
                   "output)")
    p.add_argument("--top-k", type=int, default=20, help="top-k log-probs per position for kl (default 20)")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--backend", choices=("transformers", "vllm"), default="transformers",
                   help="how local models are run (default transformers)")
    p.add_argument("--gpus", help="'auto', 'cpu', a count or indices")
    p.add_argument("--name", default="", help="a name to find the job by")
    p.add_argument("--detach", dest="eval_detach", action="store_true", help="print the job id and return")
    p.set_defaults(func=cmd_run)

    p = es.add_parser("show", help="results of an evaluation: per-model table (and rows with --rows)")
    p.add_argument("run", help="job id, run folder or output folder")
    p.add_argument("--rows", type=int, default=0, help="also print up to N rows of the drill-down")
    p.add_argument("--filter", default="all", help="drill-down filter: all, model_wrong, model_right, judge_win, "
                   "judge_loss, judge_tie, highest_kl")
    p.add_argument("--json", action="store_true", help="print results.json (and the selected rows)")
    p.set_defaults(func=cmd_show)

    p = es.add_parser("compare", help="two evaluations side by side: metric deltas and rows that flipped")
    p.add_argument("a", help="first run (e.g. before distillation)")
    p.add_argument("b", help="second run (e.g. after)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = es.add_parser("export", help="write an evaluation as JSON, CSV (rows) or a Markdown report")
    p.add_argument("run")
    p.add_argument("--format", choices=("json", "csv", "md"), default="md")
    p.add_argument("--out", help="file to write (default: evaluation.<format> in the run's output folder)")
    p.set_defaults(func=cmd_export)


def _ws(args: argparse.Namespace) -> Workspace:
    return Workspace.open(args.workspace)


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _load(ref: str, ws: Workspace):
    from core.eval import results

    try:
        return results.load(ref, ws)
    except FileNotFoundError:
        # maybe a job id prefix
        from core.jobs.manager import JobManager, JobNotFound

        try:
            job_id = JobManager(ws, attach=False).resolve(ref)
        except JobNotFound:
            raise FileNotFoundError(f"no evaluation '{ref}': give a job id, a run folder or an output folder") \
                from None
        return results.load(job_id, ws)


def cmd_run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from core.cli.jobs import _parse_gpus, submit_and_follow
    from core.eval.form import build_job

    ws = _ws(args)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        return _err(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRIC_NAMES)}")
    try:
        job = build_job(ws, {"model": args.model[0], "students": args.model[1:], "dataset": args.dataset,
                             "metrics": metrics,
                             "reference": args.reference, "judge": args.judge, "limit": args.limit,
                             "reward_model": args.reward_model,
                             "answer_field": args.answer_field, "top_k": args.top_k,
                             "max_new_tokens": args.max_new_tokens, "backend": args.backend, "name": args.name},
                        confine=False)
        if args.gpus:
            job.gpus = _parse_gpus(args.gpus)
    except ValidationError as e:
        from core.config.errors import explain

        return _err("; ".join(explain(e, set())))
    except ValueError as e:
        return _err(str(e))
    return submit_and_follow(args, job, detach=args.eval_detach)


def cmd_show(args: argparse.Namespace) -> int:
    from core.eval import results

    try:
        run = _load(args.run, _ws(args))
        headers, rows = results.drilldown(run.rows, args.filter, limit=args.rows or 0)
    except (FileNotFoundError, ValueError) as e:
        return _err(str(e))
    if args.json:
        out: dict[str, Any] = {"results": run.results}
        if args.rows:
            out["rows"] = [dict(zip(headers, r, strict=True)) for r in rows]
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    sys.stdout.write(results.markdown_report(run))
    if args.rows:
        print()
        print(text_table(headers, rows))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from core.eval.compare import compare

    ws = _ws(args)
    try:
        a, b = _load(args.a, ws), _load(args.b, ws)
    except (FileNotFoundError, ValueError) as e:
        return _err(str(e))
    c = compare(a, b)
    if args.json:
        print(json.dumps({"a": a.name, "b": b.name, "summary": c.summary, "changed": c.changed, "common": c.common,
                          "only_a": c.only_a, "only_b": c.only_b, "notes": c.notes}, ensure_ascii=False, indent=1))
        return 0
    print(f"A = {a.name} ({a.folder})\nB = {b.name} ({b.folder})\n{c.common} rows in both, {c.only_a} only in A, "
          f"{c.only_b} only in B")
    for note in c.notes:
        print(f"note: {note}")
    print(text_table(*c.summary_table()))
    if c.changed:
        print(f"\n{len(c.changed)} row(s) changed:")
        print(text_table(*c.changed_table()))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.eval import results

    try:
        run = _load(args.run, _ws(args))
        path = results.export(run, args.format, args.out)
    except (FileNotFoundError, ValueError) as e:
        return _err(str(e))
    print(path)
    return 0

