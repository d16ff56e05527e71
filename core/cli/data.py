"""`easydistill data ...`: import, inspect, convert, split, dedupe and balance datasets headless (same core as the
Data tab). Files given here are the local user's: any path, relative to the current folder, except that a path into
the workspace never leads out of it through a link (`Workspace.local`); a bare name is a workspace dataset.

split, dedupe, stats, export and balance run in this process (the Data tab submits them as jobs): they stream the
dataset in bounded memory either way, and a terminal sees their progress on stderr. To run one as a job instead
(listed, stoppable from the Jobs tab), give `easydistill --config` a `data_split` / `data_dedupe` / ... config.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.data.errors import DataError
from core.workspace import Workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="import, inspect, convert, split and dedupe datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    a = dsub.add_parser("import", help="import a JSON/JSONL/CSV/Parquet file (or an entry of a LLaMA-Factory "
                                       "dataset_info.json) as a workspace dataset")
    a.add_argument("file", help="the data file, or a LLaMA-Factory dataset_info.json (or its folder) with --entry")
    a.add_argument("--entry", help="which dataset_info.json entry to import (default: its only entry)")
    a.add_argument("--name", help="dataset name (default: the file name without extension, or the entry's name)")
    a.add_argument("--format", dest="fmt", help="force a format (default: detected)")
    a.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                   help="map a format field to a column of the file, e.g. --map instruction=question")
    a.add_argument("--on-error", choices=["skip", "stop"], default="skip",
                   help="bad records: skip into <name>.rejects.jsonl (default) or stop and list them")
    a.add_argument("--overwrite", action="store_true")
    a.set_defaults(func=cmd_import)

    a = dsub.add_parser("detect", help="show the detected format and the first records of a file")
    a.add_argument("file")
    a.set_defaults(func=cmd_detect)

    a = dsub.add_parser("list", help="datasets in the workspace")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_list)

    a = dsub.add_parser("show", help="print rows of a dataset (one page)")
    a.add_argument("name")
    a.add_argument("--page", type=int, default=1)
    a.add_argument("--page-size", type=int, default=10)
    a.set_defaults(func=cmd_show)

    a = dsub.add_parser("stats", help="rows, lengths, duplicates, empty fields")
    a.add_argument("name")
    a.add_argument("--tokenizer", help="model folder whose tokenizer counts tokens")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_stats)

    a = dsub.add_parser("export", help="write a dataset in another format")
    a.add_argument("name")
    a.add_argument("--format", dest="fmt", required=True,
                   choices=["messages", "alpaca", "sharegpt", "easydistill", "dpo", "omnithought", "canonical"])
    a.add_argument("--out", help="output file (default: workspace/datasets/exports/<name>-<format>.<ext>)")
    a.add_argument("--no-ids", action="store_true", help="leave the row ids out")
    a.add_argument("--llamafactory", action="store_true",
                   help="also add an entry to dataset_info.json next to the output (LLaMA-Factory: the columns "
                        "the file has; pairs as a preference entry for stage rm/dpo)")
    a.set_defaults(func=cmd_export)

    a = dsub.add_parser("split", help="seeded train/eval split into <name>-train and <name>-eval (by hash of each "
                                      "row's question_id, else its id: a row stays on its side whatever the order)")
    a.add_argument("name")
    a.add_argument("--eval-share", type=float, default=0.1)
    a.add_argument("--seed", type=int, default=42)
    a.set_defaults(func=cmd_split)

    a = dsub.add_parser("dedupe", help="drop duplicate rows into <name>-dedup")
    a.add_argument("name")
    a.add_argument("--by", choices=["instruction", "instruction_output", "content"], default="instruction")
    a.set_defaults(func=cmd_dedupe)

    a = dsub.add_parser("balance", help="resample a classified dataset toward category shares")
    a.add_argument("name")
    a.add_argument("--shares", required=True, help='e.g. "Math=0.3,Code Generation=0.2,Others=0.5"')
    a.add_argument("--total", type=int)
    a.add_argument("--upsample", action="store_true")
    a.add_argument("--seed", type=int, default=42)
    a.add_argument("--out", help="output dataset name (default: <name>-balanced)")
    a.set_defaults(func=cmd_balance)


def _ws(args) -> Workspace:
    return Workspace.open(args.workspace)


def _ref(ws: Workspace, ref: str) -> str:
    """A workspace dataset's name as is; any other argument is a file path, relative to the current folder."""
    from core.data.store import NAME_RE

    name = ref.strip().removesuffix(".jsonl")
    if NAME_RE.match(name) and (ws.datasets / f"{name}.jsonl").exists():
        return name
    return str(ws.local(ref))


def _tracker():
    """Progress on stderr (rows read) when it is a terminal; nothing otherwise."""
    from core.data.stream import Tracker

    if not sys.stderr.isatty():
        return Tracker()

    def show(done: int, total: int | None) -> None:
        print(f"\r  {done:,}" + (f" / {total:,}" if total else "") + " rows", end="", file=sys.stderr, flush=True)

    return Tracker(show)


def _done(track) -> None:
    if sys.stderr.isatty() and track.done:
        print(file=sys.stderr)


def _guard(fn):
    def wrapped(args) -> int:
        try:
            return fn(args)
        except DataError as e:
            print(e.report(), file=sys.stderr)
            return 2
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    wrapped.__doc__ = fn.__doc__
    return wrapped


@_guard
def cmd_import(args) -> int:
    from core.data.llamafactory_import import import_llamafactory, is_dataset_info
    from core.data.store import import_file

    src = _ws(args).local(args.file)
    mapping = {}
    for item in args.map:
        k, sep, v = item.partition("=")
        if not sep or not k or not v:
            raise DataError(f"--map {item!r}: expected FIELD=COLUMN")
        mapping[k.strip()] = v.strip()
    if is_dataset_info(src):
        if args.fmt or mapping:
            raise DataError("--format / --map do not apply to a dataset_info.json: its entry names the formatting "
                            "and columns")
        res = import_llamafactory(_ws(args), src, args.entry, args.name, args.on_error, args.overwrite)
    elif args.entry:
        raise DataError(f"--entry names an entry of a LLaMA-Factory dataset_info.json; {src.name} is a data file")
    else:
        res = import_file(_ws(args), src, args.name or src.stem, args.fmt, mapping or None, args.on_error,
                          overwrite=args.overwrite)
    print(res.summary())
    for e in res.errors[:20]:
        print(f"  - {e}", file=sys.stderr)
    if len(res.errors) > 20:
        print(f"  ... and {len(res.errors) - 20} more in {res.rejects_path}", file=sys.stderr)
    return 0


@_guard
def cmd_detect(args) -> int:
    from core.data.store import detect_file

    det, recs = detect_file(_ws(args).local(args.file), 5)
    print(f"format: {det.format or 'unknown'}" + (f"  mapping: {det.mapping}" if det.mapping else ""))
    if det.note:
        print(f"note: {det.note}")
    print(f"columns: {', '.join(det.columns)}")
    for r in recs:
        print(f"  line {r.line}: " + (f"ERROR {r.error}" if r.error else json.dumps(r.value, ensure_ascii=False)[:200]))
    return 0


@_guard
def cmd_list(args) -> int:
    from core.data.store import list_datasets

    items = list_datasets(_ws(args))
    if args.json:
        print(json.dumps([{"name": d.name, "rows": d.rows, "format": d.format, "created_by": d.created_by,
                           "source": d.source, "rejects": d.rejects, "path": str(d.path)} for d in items], indent=2))
        return 0
    for d in items:
        rej = f"  ({d.rejects} rejects)" if d.rejects else ""
        print(f"{d.name:40s} {d.rows:>8d} rows  {d.format:12s} {d.created_by}{rej}")
    return 0


@_guard
def cmd_show(args) -> int:
    from core.data.preview import read_page
    from core.data.store import resolve_dataset

    ws = _ws(args)
    rows, pages = read_page(resolve_dataset(ws, _ref(ws, args.name), confined=False), args.page, args.page_size)
    for r in rows:
        print(json.dumps(r, ensure_ascii=False))
    print(f"# page {min(max(1, args.page), pages)} of {pages}", file=sys.stderr)
    return 0


@_guard
def cmd_stats(args) -> int:
    from core.data.stats import compute_stats, percentiles
    from core.data.store import resolve_dataset

    ws = _ws(args)
    tok = None
    if args.tokenizer:
        cand = ws.models / args.tokenizer
        tok = ws.inside(cand) if "/" not in args.tokenizer and cand.is_dir() else ws.local(args.tokenizer)
    track = _tracker()
    st = compute_stats(resolve_dataset(ws, _ref(ws, args.name), confined=False), tok, track=track)
    _done(track)
    out = {
        "rows": st.rows, "duplicate_instructions": st.duplicate_instructions, "duplicate_pairs": st.duplicate_pairs,
        "multi_turn": st.multi_turn,
        "fields": {r[0]: {"present": r[1], "empty": r[2], "missing": r[3], "mean_chars": r[4], "max_chars": r[5]}
                   for r in st.summary_rows()},
    }
    if st.tokenizer:
        out["tokens"] = {"tokenizer": st.tokenizer, "sample": st.token_sample,
                         "prompt": percentiles(st.prompt_tokens), "output": percentiles(st.output_tokens)}
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(f"rows: {st.rows}   duplicate instructions: {st.duplicate_instructions}   "
              f"duplicate pairs: {st.duplicate_pairs}   multi-turn: {st.multi_turn}")
        for name, f in out["fields"].items():
            print(f"  {name:12s} present {f['present']:>7d}  empty {f['empty']:>6d}  missing {f['missing']:>6d}  "
                  f"mean {f['mean_chars']:>8} chars  max {f['max_chars']}")
        if "tokens" in out:
            t = out["tokens"]
            print(f"tokens ({t['tokenizer']}, {t['sample']} rows): prompt {t['prompt']}  output {t['output']}")
    return 0


@_guard
def cmd_export(args) -> int:
    from core.data.convert import EXPORT_FORMATS, check_llamafactory, export_rows, register_llamafactory
    from core.data.store import exports_dir
    from core.data.stream import holds_pairs, open_source

    ws = _ws(args)
    ref = _ref(ws, args.name)
    src = open_source(ws, ref, confined=False)
    stem = ref.rsplit("/", 1)[-1].rsplit(".", 1)[0] if "/" in ref else ref  # a file's name without its extension
    out = ws.local(args.out) if args.out else exports_dir(ws) / f"{stem}-{args.fmt}{EXPORT_FORMATS[args.fmt]}"
    if args.llamafactory:  # refused before anything is written
        check_llamafactory(args.fmt, out)
    pairs = holds_pairs(src.rows()) if args.fmt in ("alpaca", "sharegpt") else None  # streamed: see export_rows
    track = _tracker()
    # DataError when no row can be written
    res = export_rows(track.watch(src.rows()), args.fmt, out, keep_id=not args.no_ids, preference=pairs)
    _done(track)
    print(res.summary())
    if args.llamafactory:
        info, name = register_llamafactory(res, args.fmt)
        print(f"LLaMA-Factory entry '{name}' written to {info}")
    return 0


@_guard
def cmd_split(args) -> int:
    from core.data.ops import split_dataset

    ws = _ws(args)
    track = _tracker()
    tn, nt, en, ne = split_dataset(ws, _ref(ws, args.name), args.eval_share, args.seed, confined=False, track=track)
    _done(track)
    print(f"{tn}: {nt} rows, {en}: {ne} rows")
    return 0


@_guard
def cmd_dedupe(args) -> int:
    from core.data.ops import dedupe_dataset

    ws = _ws(args)
    track = _tracker()
    new, kept, removed = dedupe_dataset(ws, _ref(ws, args.name), args.by, confined=False, track=track)
    _done(track)
    print(f"{new}: {kept} rows kept, {removed} duplicates removed")
    return 0


@_guard
def cmd_balance(args) -> int:
    from core.data.ops import balance_dataset

    shares = {}
    for part in args.shares.split(","):
        k, sep, v = part.rpartition("=")
        if not sep or not k.strip():
            raise DataError(f"--shares: {part!r} is not CATEGORY=SHARE")
        shares[k.strip()] = float(v)
    ws = _ws(args)
    track = _tracker()
    name, n, rep = balance_dataset(ws, _ref(ws, args.name), shares, args.total, args.seed, args.upsample,
                                   args.out or f"{args.name}-balanced", confined=False, track=track)
    _done(track)
    print(f"{name}: {n} rows; before {rep.before}; after {rep.after}")
    if rep.short:
        print(f"below target (not enough rows): {rep.short}", file=sys.stderr)
    return 0
