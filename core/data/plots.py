"""Plotly figures of a dataset's statistics: length histograms in characters (per field) and in tokens (prompt vs
answer). The Data tab shows them; titles come from the caller so they can be in the reader's language. plotly is
imported on use only."""

from __future__ import annotations

from typing import Any

from core.data.stats import DatasetStats

BINS = 40


def length_histogram(series: dict[str, list[int]], title: str) -> Any:
    """Overlaid histograms, one per named series of lengths (empty series are left out)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, values in series.items():
        if values:
            fig.add_trace(go.Histogram(x=values, name=name, opacity=0.65, nbinsx=BINS))
    fig.update_layout(barmode="overlay", title=title, height=320, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      legend={"orientation": "h", "y": -0.15})
    return fig


def chars_figure(stats: DatasetStats, title: str) -> Any:
    """Length in characters of every field that occurs."""
    return length_histogram({k: f.chars for k, f in stats.fields.items() if f.chars}, title)


def tokens_figure(stats: DatasetStats, title: str) -> Any | None:
    """Prompt and answer length in tokens; None when no tokenizer was used."""
    if not stats.tokenizer:
        return None
    return length_histogram({"prompt": stats.prompt_tokens, "output": stats.output_tokens}, title)
