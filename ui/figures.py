"""Plotly figures: the top-k bar chart and the interactive heatmap over the image."""
from __future__ import annotations

import matplotlib
import numpy as np
import plotly.graph_objects as go
from PIL import Image

from explainers.heads import probability_caption
from explainers.results import Prediction

MAX_HOVER_SIDE = 320  # the interactive view is subsampled: a full-size heatmap would be megabytes of JSON



def plotly_colorscale(colormap: str, stops: int = 33) -> list[list]:
    """A matplotlib colormap as a plotly colorscale, so the hover view matches the overlays."""
    cmap = matplotlib.colormaps[colormap]
    return [[float(t), "rgb({},{},{})".format(*(int(round(255 * c)) for c in cmap(float(t))[:3]))]
            for t in np.linspace(0.0, 1.0, stops)]


def top_k_chart(predictions: list[Prediction], compact: bool = False) -> go.Figure:
    """Horizontal bars of the class probabilities, best at the top (``compact``: sized for the sidebar);
    a sigmoid head's bars are labelled as independent labels (they need not sum to 1)."""
    labels = [f"{p.name} ({p.index})" for p in predictions]
    probs = [p.probability for p in predictions]
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h", text=[f"{p:.1%}" for p in probs],
                           textposition="auto", hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    head = predictions[0].head if predictions else "softmax"
    rows = 22 if compact else 32
    fig.update_layout(height=(36 if compact else 60) + rows * len(predictions),
                      margin=dict(l=4, r=4, t=4, b=24) if compact else dict(l=10, r=10, t=10, b=30),
                      font=dict(size=11) if compact else None,
                      xaxis=dict(range=[0, 1], tickformat=".0%", title=probability_caption(head)),
                      yaxis=dict(autorange="reversed"))
    return fig


def heatmap_figure(image: Image.Image, cam: np.ndarray, colormap: str, opacity: float, title: str) -> go.Figure:
    """The image with the map as a semi-transparent heatmap on top; hover shows the map's value.

    Args:
        image: the original RGB image.
        cam: (H, W) map on the image grid, values in [0, 1].
    """
    height, width = cam.shape
    step = max(1, int(np.ceil(max(height, width) / MAX_HOVER_SIDE)))
    small_cam = cam[::step, ::step]
    small_image = np.asarray(image.convert("RGB"))[::step, ::step]
    xs = np.arange(small_cam.shape[1]) * step  # axes in original-image pixels
    ys = np.arange(small_cam.shape[0]) * step
    fig = go.Figure()
    fig.add_trace(go.Image(z=small_image, x0=0, dx=step, y0=0, dy=step, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=small_cam, x=xs, y=ys, zmin=0.0, zmax=1.0, opacity=opacity,
                             colorscale=plotly_colorscale(colormap), colorbar=dict(title="value"),
                             hovertemplate="x=%{x}, y=%{y}<br>value=%{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=40, b=10), height=520)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showgrid=False)
    fig.update_xaxes(showgrid=False, constrain="domain")
    return fig
