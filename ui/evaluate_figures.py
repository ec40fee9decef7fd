"""Figures of the Evaluate page: plotly curves and similarity lines, and the localisation picture."""
from __future__ import annotations

import cv2
import numpy as np
import plotly.graph_objects as go
from PIL import Image

from explainers.metrics.faithfulness import Faithfulness
from explainers.metrics.localisation import Localisation
from explainers.metrics.sanity import PASS_BELOW, SanityResult
from explainers.render import overlay, upsample

DELETION_COLOR, INSERTION_COLOR = "#d62728", "#2ca02c"


def curves_figure(found: Faithfulness, title: str) -> go.Figure:
    """Deletion and insertion curves of one map, with their areas in the legend."""
    fig = go.Figure()
    for curve, color in ((found.deletion, DELETION_COLOR), (found.insertion, INSERTION_COLOR)):
        fig.add_trace(go.Scatter(
            x=curve.fractions, y=curve.probabilities, mode="lines", fill="tozeroy", line=dict(color=color),
            name=f"{curve.kind} · area {curve.area:.3f}",
            hovertemplate=f"{curve.kind}: %{{x:.0%}} of the pixels<br>p = %{{y:.3f}}<extra></extra>"))
    fig.update_layout(title=title, height=300, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25),
                      xaxis=dict(title="share of pixels removed / revealed", tickformat=".0%", range=[0, 1]),
                      yaxis=dict(title="class probability", range=[0, 1.02]))
    return fig


def similarity_figure(result: SanityResult, names: dict[str, str]) -> go.Figure:
    """Spearman (solid) and SSIM (dotted) of each method's map with its original, per randomization step."""
    steps = [s.group for s in result.steps]
    fig = go.Figure()
    for method in result.original:
        fig.add_trace(go.Scatter(x=steps, y=[s.spearman[method] for s in result.steps], mode="lines+markers",
                                 name=f"{names[method]} · Spearman"))
        ssim = [s.ssim[method] for s in result.steps]
        if all(v is not None for v in ssim):
            fig.add_trace(go.Scatter(x=steps, y=ssim, mode="lines", line=dict(dash="dot"),
                                     name=f"{names[method]} · SSIM"))
    if result.verdicts:
        fig.add_hline(y=PASS_BELOW, line=dict(dash="dash", color="gray"),
                      annotation_text=f"fails at median ≥ {PASS_BELOW}")
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), yaxis=dict(range=[-1, 1.05],
                      title="similarity to the original map"),
                      xaxis=dict(title=f"{result.mode} randomization: layer group re-initialized"))
    return fig


def localisation_picture(image: Image.Image, cam: np.ndarray, truth: np.ndarray, found: Localisation,
                         side: int) -> np.ndarray:
    """The overlay at display size with the ground truth, the thresholded map and the peak with its tolerance."""
    small = image.copy()
    small.thumbnail((side, side))
    scale = small.width / image.width
    picture = overlay(small, upsample(cam, (small.height, small.width)), 0.45, "jet")
    size = (small.width, small.height)
    for mask, color in ((truth, (255, 255, 255)), (cam >= found.threshold * max(float(cam.max()), 1e-12),
                                                    (0, 255, 255))):
        resized = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(resized, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(picture, contours, -1, color, 2)
    x, y = found.pointing.point
    centre = (int(round(x * scale)), int(round(y * scale)))
    color = (0, 200, 0) if found.pointing.hit else (230, 0, 0)
    cv2.circle(picture, centre, max(int(round(found.pointing.tolerance * scale)), 3), color, 2)
    cv2.drawMarker(picture, centre, color, cv2.MARKER_CROSS, 12, 2)
    return picture
