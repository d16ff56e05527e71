"""Comparing 2–4 runs: their curves overlaid, what differs between their configs, their final metrics side by side.

Everything is read from the run folders through the job manager (`job.yaml`, `metrics.jsonl`), for any kind of job:
two SFT runs with another learning rate, a KD run against an SFT run, two demo pipelines. The configs are compared
key by key as dotted paths (`lora.r`, `sampling.temperature`; a pipeline's steps by name: `steps.sft.job.max_steps`),
and only the keys whose values differ are listed. The runs' evaluation results side by side come from
`core.eval.compare.side_by_side` (the eval room builds on this one, so the callers — the Jobs tab and
`easydistill jobs compare` — put the two together).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.errors import UserError
from core.jobs.plots import PREFERRED, UNPLOTTED
from core.jobs.progress import format_duration, series

MIN_RUNS, MAX_RUNS = 2, 4
MAX_PANELS = 6
MISSING = "—"  # a key one run's config does not have
# one colour per run in every panel (plotly's default sequence), one dash per pipeline stage
COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


class CompareError(UserError, ValueError):
    """The runs picked cannot be compared (too few, too many)."""


@dataclass
class Run:
    """One run as compared: who it is, its config as a dict and its metrics lines."""

    id: str
    name: str
    kind: str
    status: str
    run_dir: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]
    duration_s: float | None = None
    label: str = field(default="")


def load_runs(jobs: Any, refs: list[str]) -> list[Run]:
    """The runs named by `refs` (ids or unique id prefixes), 2–4 of them, each labelled by its name (its id where
    two names are the same or a name is empty). `jobs`: a JobManager."""
    ids = list(dict.fromkeys(jobs.resolve(r) for r in refs if str(r).strip()))
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise CompareError(f"compare {MIN_RUNS} to {MAX_RUNS} different runs ({len(ids)} given)")
    runs = []
    for job_id in ids:
        info = jobs.get(job_id, refresh=False)
        try:
            config = yaml.safe_load(jobs.config_text(job_id) or "") or {}
        except yaml.YAMLError:
            config = {}
        runs.append(Run(info.id, info.name or "", info.kind, info.status, Path(info.run_dir),
                        config if isinstance(config, dict) else {}, jobs.metrics(job_id), info.duration_s))
    names = [r.name for r in runs]
    for r in runs:
        r.label = r.name if r.name and names.count(r.name) == 1 else (f"{r.name} · {r.id}" if r.name else r.id)
    return runs


# ------------------------------------------------------------------------------------------------ configs

def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaf values. Mappings nest; a list of mappings that each have a distinct `name` (a pipeline's
    steps) is keyed by name, another list of mappings by index; any other list is one value."""
    if isinstance(data, dict):
        if not data and prefix:
            return {prefix: data}
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        names = [x.get("name") for x in data]
        keys = names if all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names) else \
            [str(i) for i in range(len(data))]
        out = {}
        for k, x in zip(keys, data, strict=True):
            out.update(flatten({n: v for n, v in x.items() if keys is not names or n != "name"}, f"{prefix}.{k}"))
        return out
    return {prefix: data}


def config_diff(runs: list[Run]) -> list[tuple[str, list[Any]]]:
    """(dotted key, value per run) of every key whose values are not all the same; `MISSING` where a run lacks it.
    Keys in the order the first run that has them lists them."""
    flat = [flatten(r.config) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    out = []
    for k in keys:
        values = [f.get(k, MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            out.append((k, values))
    return out


def diff_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """The config diff as a table: a key per row, a run per column."""
    return ["key", *[r.label for r in runs]], [[k, *[shown(v) for v in vals]] for k, vals in config_diff(runs)]


def shown(v: Any) -> str:
    """A config value as one cell: text as is, anything else as YAML/JSON would write it (null, true, [a, b])."""
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, default=str)


# ------------------------------------------------------------------------------------------------ metrics

def final_values(records: list[dict]) -> dict[str, float]:
    """The last value of every scalar a run logged, as `name` (or `name (stage)` for a pipeline's step)."""
    out: dict[str, float] = {}
    for name, points in series(records).items():
        if name in UNPLOTTED:
            continue
        for stage in dict.fromkeys(s for _, _, s in points):
            last = [v for _, v, s in points if s == stage][-1]
            out[f"{name} ({stage})" if stage else name] = last
    return out


def metrics_table(runs: list[Run]) -> tuple[list[str], list[list[Any]]]:
    """Status, duration and the final value of every scalar, a run per column (the CLI's and the tab's table)."""
    finals = [final_values(r.records) for r in runs]
    names = sorted(dict.fromkeys(n for f in finals for n in f), key=_order)
    rows: list[list[Any]] = [["status", *[r.status for r in runs]],
                             ["duration", *[format_duration(r.duration_s) for r in runs]]]
    rows += [[n, *[_round(f.get(n)) for f in finals]] for n in names]
    return ["metric", *[r.label for r in runs]], rows


def _order(name: str) -> tuple[int, str]:
    base = name.split(" (", 1)[0]
    return (PREFERRED.index(base) if base in PREFERRED else len(PREFERRED), name)


def _round(v: Any) -> Any:
    return float(f"{v:.6g}") if isinstance(v, float) else v


def curve_names(runs: list[Run]) -> list[str]:
    """The scalars worth a panel: those more runs logged first, then the usual order (loss, eval_loss, kd, ...)."""
    have = [set(series(r.records)) - set(UNPLOTTED) for r in runs]
    names = set().union(*have)
    return sorted(names, key=lambda n: (-sum(n in h for h in have), *_order(n)))


def curves_figure(runs: list[Run], names: list[str] | None = None, title: str = "") -> Any:
    """One panel per scalar (the first MAX_PANELS of `names`, or of `curve_names`), every run's curve overlaid in it:
    a colour per run (the same in every panel, one legend entry per run), a dash per pipeline stage."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = [series(r.records) for r in runs]
    chosen = [n for n in (names or curve_names(runs)) if any(n in d for d in data)][:MAX_PANELS]
    if not chosen:
        fig = go.Figure()
        fig.update_layout(height=220, title=title or None, annotations=[{
            "text": "no metrics in these runs", "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5,
            "y": 0.5}])
        return fig
    cols = 2 if len(chosen) > 1 else 1
    nrows = (len(chosen) + cols - 1) // cols
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=chosen, horizontal_spacing=0.08,
                        vertical_spacing=0.18 if nrows > 1 else 0.1)
    legend: set[str] = set()
    for i, name in enumerate(chosen):
        for j, (run, d) in enumerate(zip(runs, data, strict=True)):
            points = d.get(name, [])
            stages = list(dict.fromkeys(s for _, _, s in points))
            for k, stage in enumerate(stages):
                xs = [x for x, _, s in points if s == stage]
                ys = [y for _, y, s in points if s == stage]
                label = f"{run.label} · {stage}" if stage else run.label
                fig.add_trace(go.Scatter(
                    x=xs, y=ys, name=label, legendgroup=run.label, showlegend=label not in legend,
                    mode="lines+markers" if len(xs) < 60 else "lines", marker={"size": 4},
                    line={"color": COLORS[j % len(COLORS)], "dash": DASHES[k % len(DASHES)]},
                    meta={"run": run.id, "metric": name, "stage": stage}),
                    row=i // cols + 1, col=i % cols + 1)
                legend.add(label)
    fig.update_layout(height=240 * nrows + 80, margin={"l": 40, "r": 10, "t": 50, "b": 30}, title=title or None,
                      legend={"orientation": "h", "y": -0.08})
    fig.update_xaxes(title_text="step")
    return fig
