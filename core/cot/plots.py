"""Plotly figures of a curation, drawn from `core.cot.mix.plot_stats` ({"before": stats, "after": stats}): RV and CD
histograms (all rows vs the selection), the RV×CD count heatmaps side by side, mean response length per RV, and rows
per teacher. Titles and labels come from the caller (the page's language); plotly is imported on use only, so the
job and the CLI never pay for it."""

from __future__ import annotations

from typing import Any

LEVELS = list(range(10))
COLORS = {"before": "#94a3b8", "after": "#3b82f6"}


def score_histograms(stats: dict, titles: tuple[str, str] = ("RV", "CD"),
                     names: tuple[str, str] = ("all rows", "selected")) -> Any:
    """RV and CD histograms, two panels, each with all rows and the selection overlaid."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=list(titles))
    for col, key in ((1, "rv_hist"), (2, "cd_hist")):
        for part, name in zip(("before", "after"), names, strict=True):
            fig.add_trace(go.Bar(x=LEVELS, y=stats[part][key], name=name, marker_color=COLORS[part],
                                 showlegend=col == 1, opacity=0.85), row=1, col=col)
    fig.update_layout(barmode="overlay", height=300, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(dtick=1)
    return fig


def rv_cd_heatmaps(stats: dict, titles: tuple[str, str] = ("all rows", "selected"), rv_label: str = "RV",
                   cd_label: str = "CD") -> Any:
    """Counts per (RV, CD) cell before and after, side by side; a click on a cell gives its (x = CD, y = RV)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=list(titles), horizontal_spacing=0.08)
    for col, part in ((1, "before"), (2, "after")):
        m = stats[part]["rv_cd_matrix"]
        fig.add_trace(go.Heatmap(z=m, x=LEVELS, y=LEVELS, colorscale="Blues", showscale=col == 2,
                                 text=[[str(v) if v else "" for v in row] for row in m], texttemplate="%{text}",
                                 hovertemplate=f"{cd_label} %{{x}} · {rv_label} %{{y}}: %{{z}}<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text=cd_label, dtick=1, row=1, col=col)
        fig.update_yaxes(title_text=rv_label if col == 1 else None, dtick=1, row=1, col=col)
    fig.update_layout(height=380, margin={"l": 50, "r": 10, "t": 40, "b": 40})
    return fig


def length_by_rv(stats: dict, title: str = "", names: tuple[str, str] = ("all rows", "selected"),
                 rv_label: str = "RV", y_label: str = "mean response length (characters)") -> Any:
    """Mean response length per RV level: verbosity scores should rise with length."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for part, name in zip(("before", "after"), names, strict=True):
        fig.add_trace(go.Scatter(x=LEVELS, y=stats[part]["mean_chars_by_rv"], mode="lines+markers", name=name,
                                 line={"color": COLORS[part]}, connectgaps=False))
    fig.update_layout(title=title or None, height=300, margin={"l": 50, "r": 10, "t": 40 if title else 20, "b": 40},
                      xaxis={"title": rv_label, "dtick": 1}, yaxis={"title": y_label},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def teachers(stats: dict, title: str = "", names: tuple[str, str] = ("all rows", "selected")) -> Any:
    """Rows per teacher, all vs selected."""
    import plotly.graph_objects as go

    keys = sorted(stats["before"]["teachers"], key=lambda k: -stats["before"]["teachers"][k])
    fig = go.Figure()
    for part, name in zip(("before", "after"), names, strict=True):
        fig.add_trace(go.Bar(x=keys, y=[stats[part]["teachers"].get(k, 0) for k in keys], name=name,
                             marker_color=COLORS[part]))
    fig.update_layout(title=title or None, barmode="group", height=280,
                      margin={"l": 40, "r": 10, "t": 40 if title else 20, "b": 40},
                      legend={"orientation": "h", "y": -0.25})
    return fig
