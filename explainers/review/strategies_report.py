"""SpRAy's outputs: ``strategies.csv`` (one row per image) and a self-contained ``strategies.html``
(every picture an inline PNG data URI, inline CSS, no script, no external reference).

Thumbnails are the original image (read from the run's SOURCE, as run.json records it) with the
map over it; when SOURCE cannot be read any more, the downsized map alone.
"""
from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from ..render import colorize, overlay, to_png_bytes, with_colorbar
from .images import OWN_MAX_SCALE, SourceFiles, map_caption
from .strategies import ClassStrategies, Cluster, Strategies

CSV_COLUMNS = ("image_id", "class_index", "cluster", "distance_to_centre", "is_representative",
               "class_name", "is_outlier", "correct")
COLORMAP = "jet"
THUMB = 112
MEAN_SIZE = 160

ImageReader = Callable[[str], Optional[Image.Image]]


def write_csv(result: Strategies, path: str | Path) -> Path:
    names = {c.class_index: c.class_name for c in result.classes}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for i in result.images:
            writer.writerow([i.image_id, i.class_index, i.cluster, f"{i.distance_to_centre:.6g}",
                             i.is_representative, names[i.class_index], i.is_outlier,
                             "" if i.correct is None else i.correct])
    return Path(path)


def source_reader(store: str | Path) -> ImageReader:
    """image_id -> the original image from the run's SOURCE (``images.SourceFiles``: never outside it),
    or None when it cannot be read."""
    files = SourceFiles.of(store)
    return lambda image_id: files.image(image_id).image


MEAN_SCALE = "fixed 0 to 1 (1 = each map's own max)"


def thumbnail_caption(result: Strategies, image_id: str, distance: float) -> str:
    """A representative's or outlier's caption: its distance to the centre, its map's scale and strength."""
    return f"{image_id} (distance {distance:.3g}) · " + map_caption(result.strengths.get(image_id), OWN_MAX_SCALE)


def mean_map_caption(cluster: Cluster) -> str:
    return f"mean map ({COLORMAP}) · " + map_caption(cluster.strength, MEAN_SCALE, "median raw max")


def thumbnail(grid_map: np.ndarray, image: Optional[Image.Image], size: int = THUMB) -> np.ndarray:
    """The image (fitted into size x size) with the map over it, or the map alone."""
    if image is None:
        return colorize(np.asarray(Image.fromarray(grid_map.astype(np.float32)).resize((size, size), Image.BILINEAR)),
                        COLORMAP)
    picture = image.convert("RGB")
    scale = size / max(picture.size)  # small images grow too, so a 32-pixel image stays readable
    picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                             Image.NEAREST if scale > 1 else Image.BILINEAR)
    return overlay(picture, grid_map, opacity=0.45, colormap=COLORMAP)


def mean_map_picture(mean_map: np.ndarray, size: int = MEAN_SIZE) -> np.ndarray:
    """The mean map, colored on a fixed 0-1 scale (1 = each map's own maximum), with its colorbar."""
    big = np.asarray(Image.fromarray(mean_map.astype(np.float32)).resize((size, size), Image.NEAREST))
    return with_colorbar(colorize(big, COLORMAP), COLORMAP, 0.0, 1.0)


def eigenvalue_picture(found: ClassStrategies) -> Optional[bytes]:
    """A small plot of the Laplacian's smallest eigenvalues with the chosen gap marked (PNG)."""
    if not found.eigenvalues:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2, 2.0), dpi=100)
    axes = figure.add_subplot()
    xs = np.arange(1, len(found.eigenvalues) + 1)
    axes.plot(xs, found.eigenvalues, "o-", color="#1f5fa8")
    k = len(found.clusters)
    axes.axvspan(k, k + 1, color="#f2b134", alpha=0.35, label=f"largest gap: k = {k}")
    axes.set_xlabel("eigenvalue number")
    axes.set_ylabel("eigenvalue")
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _figure(result: Strategies, image_id: str, read: ImageReader, distance: float) -> str:
    picture = thumbnail(result.maps[image_id], read(image_id))
    return (f'<figure>{_img(to_png_bytes(picture), image_id)}<figcaption>'
            f"{html.escape(thumbnail_caption(result, image_id, distance))}</figcaption></figure>")


def _class_section(result: Strategies, found: ClassStrategies, read: ImageReader,
                   distance: dict[str, float]) -> str:
    parts = [f"<h2>{html.escape(found.class_name)} (class {found.class_index}): {found.images} images, "
             f"{len(found.clusters)} strateg{'y' if len(found.clusters) == 1 else 'ies'}</h2>",
             f"<p>{html.escape(found.reason)}.</p>"]
    plot = eigenvalue_picture(found)
    if plot is not None:
        parts.append(_img(plot, "smallest eigenvalues of the normalized Laplacian"))
    for cluster in found.clusters:
        accuracy = "accuracy unknown (no labels)" if cluster.accuracy is None else f"accuracy {cluster.accuracy:.0%}"
        parts.append(f'<div class="cluster"><h3>Cluster {cluster.index}: {cluster.size} images, {accuracy}</h3>'
                     f'<div class="row"><figure>{_img(to_png_bytes(mean_map_picture(cluster.mean_map)), "mean map")}'
                     f"<figcaption>{html.escape(mean_map_caption(cluster))}</figcaption></figure>")
        parts.append('<div><h4>Representatives (closest to the mean map)</h4><div class="row">'
                     + "".join(_figure(result, i, read, distance[i]) for i in cluster.representatives)
                     + "</div></div>")
        parts.append('<div><h4>Outliers (farthest from it)</h4><div class="row">'
                     + "".join(_figure(result, i, read, distance[i]) for i in cluster.outliers)
                     + "</div></div></div></div>")
    return "<section>" + "".join(parts) + "</section>"


STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}section{margin-bottom:2em}
.cluster{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:.8em 0}
.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}figure{margin:0;max-width:180px}
figcaption{font-size:.75em;overflow-wrap:anywhere}p.note{font-size:.85em;color:#555}"""


def write_html(result: Strategies, path: str | Path, read: Optional[ImageReader] = None) -> Path:
    """The summary page; ``read`` gives original images (default: from the run's SOURCE)."""
    read = read or source_reader(result.store)
    note = (f"Maps: {result.method} of the {result.by} class, model {result.model}, layer {result.layer}; each "
            f"resized to {result.grid}x{result.grid} and divided by its own maximum. Mean maps use the {COLORMAP} "
            "colormap on a fixed scale from 0 (no evidence) to 1 (each map's maximum). Spectral relevance "
            "analysis after Lapuschkin et al., Nature Communications 2019.")
    distance = {i.image_id: i.distance_to_centre for i in result.images}  # once, not once per class
    body = "".join(_class_section(result, c, read, distance) for c in result.classes)
    page = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Strategies: {html.escape(result.store)}"
            f"</title><style>{STYLE}</style></head><body><h1>The model's strategies</h1>"
            f'<p class="note">{html.escape(note)}</p>{body}</body></html>')
    Path(path).write_text(page, encoding="utf-8")
    return Path(path)
