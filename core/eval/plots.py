"""Plots of an evaluation (plotly figures; the UI shows them, the CLI does not need them).

Scores in [0, 1] (answer checks, win-rate, ROUGE-L) share one chart, each model (several students side by side)
beside the reference; KL and perplexity have their own
scales and get their own panels; the judge's tallies are one stacked bar, so order bias is visible next to them.
"""

from __future__ import annotations

from typing import Any

from core.eval.results import roles

RATE_METRICS = ("exact_match", "math_verify", "judge_winrate", "rouge_l")
# the reference keeps its colour; evaluated models take these in order (model, model_2, ...)
MODEL_COLORS = ("#3b82f6", "#10b981", "#8b5cf6", "#ef4444", "#06b6d4", "#84cc16", "#ec4899", "#64748b")
REFERENCE_COLOR = "#f59e0b"
SCALE_METRICS = ("kl", "perplexity")
SCORE_METRICS = ("reward_model",)  # unbounded, higher is better (a reward model's score)


def summary_figure(results: dict[str, Any], title: str = "") -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    summary = results.get("summary", {})
    every = roles(results)
    rates = [m for m in RATE_METRICS if any(m in summary.get(r, {}) for r in every)]
    scales = [m for m in SCALE_METRICS if any(m in summary.get(r, {}) for r in every)]
    scores = [m for m in SCORE_METRICS if any(m in summary.get(r, {}) for r in every)]
    panels = ([("scores (higher is better)", rates)] if rates else []) + [(f"{m} (lower is better)", [m])
                                                                            for m in scales]
    panels += [(f"{m} (higher is better)", [m]) for m in scores]
    if not panels:
        fig = go.Figure()
        fig.update_layout(title=title or "no results yet", height=260)
        return fig
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels])
    colors = {r: MODEL_COLORS[i % len(MODEL_COLORS)] for i, r in enumerate(every[:-1])}
    colors["reference"] = REFERENCE_COLOR
    names = results.get("models", {})
    for col, (_, metrics) in enumerate(panels, 1):
        for role in every:
            vals = [summary.get(role, {}).get(m) for m in metrics]
            if all(v is None for v in vals):
                continue
            fig.add_trace(go.Bar(x=list(metrics), y=vals, name=f"{role}: {names.get(role) or role}",
                                 marker_color=colors[role], showlegend=col == 1,
                                 text=[None if v is None else f"{v:.3g}" for v in vals], textposition="auto"),
                          row=1, col=col)
        if metrics == list(rates):
            fig.update_yaxes(range=[0, 1], row=1, col=col)
    fig.update_layout(title=title or None, barmode="group", height=340, margin={"t": 60, "l": 40, "r": 20, "b": 40},
                      legend={"orientation": "h", "y": -0.15})
    return fig


def judge_figure(results: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    j = results.get("judge") or {}
    fig = go.Figure()
    for key, color in (("wins", "#16a34a"), ("ties", "#a3a3a3"), ("losses", "#dc2626"), ("unjudged", "#e5e5e5")):
        fig.add_trace(go.Bar(y=["judge"], x=[j.get(key, 0)], name=key, orientation="h", marker_color=color))
    fig.update_layout(barmode="stack", height=160, margin={"t": 30, "l": 60, "r": 20, "b": 20},
                      title=f"order consistency {_pct(j.get('consistency'))} · first-position preference "
                            f"{_pct(j.get('first_position_rate'))}")
    return fig


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"
