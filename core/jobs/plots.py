"""Plotly figures of a job's metrics: every numeric scalar over step, one small panel each — curves of one meaning
(the training loss, its CE and KD parts, the held-out loss) share a panel. The one figure of a job's curves for the
Jobs tab, the Training tab and any other; plotly is imported on use only."""

from __future__ import annotations

from typing import Any

from core.jobs.progress import series

MAX_PANELS = 6
PREFERRED = ("loss", "eval_loss", "kd_loss", "rewards/margins", "rewards/chosen", "reward", "kl",
             "completions/mean_length", "accuracy", "heldout_accuracy", "learning_rate", "lr", "grad_norm",
             "tokens_per_s")
# Curves drawn in one panel (same scale, compared with each other), titled by the key.
OVERLAYS = {
    "loss": ("loss", "ce", "kd", "kd_loss", "eval_loss", "eval_ce", "eval_kd"),
    # DPO / CogPO: β·log-ratio of policy to reference, train and held out
    "rewards/margins": ("rewards/margins", "eval_rewards/margins"),
    "rewards/chosen": ("rewards/chosen", "rewards/rejected", "eval_rewards/chosen", "eval_rewards/rejected"),
    # reward model: pairwise accuracy during training, on held-out pairs, and the final held-out report
    "accuracy": ("accuracy", "eval_accuracy", "heldout_accuracy"),
}
UNPLOTTED = ("epoch",)  # a counter that rises with step: a panel of it tells nothing


def _panel_of(name: str) -> str:
    """The panel a curve is drawn in: its OVERLAYS group; GRPO's per-function rewards (rewards/<fn>/mean) join the
    total reward; every other name has its own."""
    group = next((t for t, members in OVERLAYS.items() if name in members), None)
    if group:
        return group
    if name.startswith("rewards/") and name.endswith("/mean"):
        return "reward"
    return name


def metric_names(records: list[dict]) -> list[str]:
    names = [n for n in series(records) if n not in UNPLOTTED]
    return sorted(names, key=lambda n: (PREFERRED.index(n) if n in PREFERRED else len(PREFERRED), n))


def panels(names: list[str]) -> list[tuple[str, list[str]]]:
    """(title, curves) of each panel: names in an `OVERLAYS` group share its panel (see `_panel_of`)."""
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(_panel_of(n), []).append(n)
    return list(out.items())


def metrics_figure(records: list[dict], names: list[str] | None = None, title: str = "") -> Any:
    """A figure with one panel per scalar or overlay group (the first MAX_PANELS of `names`, or the most telling)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = series(records)
    chosen = panels([n for n in (names or metric_names(records)) if n in data])[:MAX_PANELS]
    if not chosen:
        fig = go.Figure()
        fig.update_layout(height=220, margin={"l": 30, "r": 10, "t": 30, "b": 30}, title=title or None,
                          annotations=[{"text": "no metrics yet", "showarrow": False, "xref": "paper",
                                        "yref": "paper", "x": 0.5, "y": 0.5}])
        return fig
    cols = 2 if len(chosen) > 1 else 1
    rows = (len(chosen) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _ in chosen], horizontal_spacing=0.08,
                        vertical_spacing=0.18 if rows > 1 else 0.1)
    for i, (_, curves) in enumerate(chosen):
        traces = [(name, stage) for name in curves for stage in dict.fromkeys(s for _, _, s in data[name])]
        for name, stage in traces:
            xs = [x for x, _, s in data[name] if s == stage]
            ys = [y for _, y, s in data[name] if s == stage]
            label = f"{name} ({stage})" if stage else name
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 60 else "lines", name=label,
                                     showlegend=len(traces) > 1, marker={"size": 4}),
                          row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(height=230 * rows + 40, margin={"l": 40, "r": 10, "t": 40, "b": 30}, title=title or None)
    fig.update_xaxes(title_text="step")
    return fig
