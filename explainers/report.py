"""A reviewer's report: one self-contained HTML file (images inlined) that can be filed.

It holds the image, the prediction, the maps side by side, every setting needed to
regenerate them, the metrics when computed, and an intended-use note. It carries
``input_sha256``: a hash of the image's pixels and the settings, so two reports
with the same hash were made from the same inputs; the per-map hashes let a
reviewer check that regenerating gave the same maps.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from .heads import probability_caption
from .image_limits import load_notes
from .io import image_sha256
from .models.spec import LoadedModel
from .render import overlay, scale_to_range, to_png_bytes
from .results import CamResult, Prediction

INTENDED_USE = (
    "For research and for reviewing how a model behaves. A class activation map shows which regions of "
    "this image drove the model's score for one class at one layer; it is not a diagnosis, not a "
    "segmentation, and not validated for clinical decisions. Different methods can disagree: read them "
    "together, and with the prediction's probability."
)
DISPLAY_SIDE = 512  # images in the report are at most this large; hashes are of the full data


@dataclass(frozen=True)
class Report:
    """The HTML and the hashes it carries."""

    html: str
    input_sha256: str  # sha256 over the image's pixel hash and the settings JSON
    map_sha256: dict[str, str]  # "method/layer/classN" -> sha256 of the raw map (float32 bytes)
    settings: dict


def map_key(result: CamResult) -> str:
    contrast = f"-vs-{result.contrast_index}" if result.contrast_index is not None else ""
    return f"{result.method}/{result.layer}/class{result.class_index}{contrast}"


def map_sha256(result: CamResult) -> str:
    """Hash of the unnormalized map at layer resolution (what the engine computed)."""
    raw = np.ascontiguousarray(result.raw, dtype=np.float32)
    return hashlib.sha256(f"{raw.shape}".encode() + raw.tobytes()).hexdigest()


def report_settings(model: LoadedModel, results: Sequence[CamResult], versions: Mapping[str, Optional[str]],
                    rendering: Optional[Mapping[str, object]] = None) -> dict:
    """The settings that decide the maps: model and weights, layers, classes, methods, preprocessing,
    package versions and device (plus the rendering, which changes only the pictures)."""
    return {
        "model": model.name, "model_display_name": model.spec.display_name,
        "architecture": model.spec.architecture, "weights_sha256": model.weights_sha256,
        "random_weights": model.random_weights, "device": str(model.device),
        "layers": list(dict.fromkeys(r.layer for r in results)),
        "classes": list(dict.fromkeys(r.class_index for r in results)),
        "contrast_classes": sorted({r.contrast_index for r in results if r.contrast_index is not None}),
        "methods": list(dict.fromkeys(r.method for r in results)),
        "preprocessing": model.preprocessing.as_dict(),
        "head": model.head,
        "versions": dict(versions),
        "rendering": dict(rendering or {}),
    }


def build_report(model: LoadedModel, image: Image.Image, results: Sequence[CamResult],
                 predictions: Sequence[Prediction], *, image_name: str = "",
                 metrics: Optional[Mapping[str, object]] = None, colormap: str = "jet",
                 opacity: float = 0.5, shared_scale: bool = False,
                 verdicts: Sequence[Mapping[str, str]] = ()) -> Report:
    """Build the report for maps already computed.

    Args:
        model: the model the maps were computed with.
        image: the RGB image as loaded (e.g. by ``explainers.io.load_image``).
        results: the maps (one CamResult each), shown side by side in this order.
        predictions: the model's top classes for the image, best first.
        image_name: shown in the report (a file name; nothing else about the file is included).
        metrics: e.g. {"gradcam / deletion AUC": 0.21}; values are shown as they are.
        colormap, opacity: how the overlays are drawn.
        shared_scale: draw the class maps on one shared range (as the app's toggle does), so a
            weaker map looks weaker; contrast maps keep their own range.
        verdicts: reviewers' verdicts on this image of a store (``explainers.review.verdicts``), oldest
            first, each {"time", "reviewer", "verdict", "note"}; a "Reviewer verdicts" section when given.

    Returns:
        Report with the HTML, ``input_sha256`` and one hash per map.
    """
    from .cli import package_versions  # one list of versions for the CLI's summary and the report

    rendering = {"colormap": colormap, "opacity": opacity, "shared_scale": bool(shared_scale)}
    settings = report_settings(model, results, package_versions(), rendering)
    notes = load_notes(image)  # what reading the image changed, said wherever its maps are shown
    if notes:
        settings["image_notes"] = notes
    pixels = image_sha256(image)
    input_sha = hashlib.sha256((pixels + json.dumps(settings, sort_keys=True)).encode()).hexdigest()
    hashes = {map_key(r): map_sha256(r) for r in results}

    shown = image.copy()
    shown.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.BILINEAR)
    cells = [_figure(shown, f"Original · {image.width} × {image.height}")]
    maps = _scaled(results, (shown.height, shown.width), shared_scale, model.preprocessing)
    cells += [_figure(overlay(shown, m, opacity, colormap),
                      f"{r.method_name}{_reference_note(r)} · {r.label} · layer {r.layer} · {r.seconds:.2f} s")
              for r, m in zip(results, maps)]
    rows_predictions = [(f"{p.index}", p.name, f"{p.probability:.4f}", f"{p.score:.4f}") for p in predictions]
    rows_settings = [(key, json.dumps(value) if not isinstance(value, str) else value)
                     for key, value in settings.items() if key != "versions"]
    rows_versions = [(name, version or "not installed") for name, version in settings["versions"].items()]
    rows_maps = [(key, value) for key, value in hashes.items()]
    rows_metrics = [(str(k), _plain(v)) for k, v in (metrics or {}).items()]
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([
        f"<h1>CAMscope report</h1><p class=muted>{_e(image_name)} · created {created}</p>",
        f"<p><b>Input hash</b> (image pixels + settings): <code>{input_sha}</code><br>"
        f"<b>Image pixel hash</b>: <code>{pixels}</code></p>",
        f"<h2>Intended use</h2><p class=note>{_e(INTENDED_USE)}</p>",
        "<h2>Prediction</h2>" + _table(("index", "class", probability_caption(model.head), "logit"),
                                       rows_predictions),
        "<h2>Maps</h2><div class=grid>" + "".join(cells) + "</div>",
        "<h2>Metrics</h2>" + (_table(("metric", "value"), rows_metrics) if rows_metrics
                              else "<p class=muted>No metrics were computed for this report.</p>"),
        *([_verdicts_section(verdicts)] if verdicts else []),
        "<h2>Settings</h2>" + _table(("setting", "value"), rows_settings),
        "<h2>Map hashes</h2><p class=muted>sha256 of each raw map (float32, layer resolution); "
        "regenerating with the same settings gives the same hashes.</p>" + _table(("map", "sha256"), rows_maps),
        "<h2>Package versions</h2>" + _table(("package", "version"), rows_versions),
    ])
    page = _PAGE.format(title=_e(f"CAMscope report · {image_name}"), body=body)
    return Report(page, input_sha, hashes, settings)


def _verdicts_section(verdicts: Sequence[Mapping[str, str]]) -> str:
    """The store's reviewer verdicts on this image, the latest first (it is the image's verdict)."""
    rows = [(v.get("time", ""), v.get("reviewer", ""), v.get("verdict", ""), v.get("note", ""))
            for v in reversed(list(verdicts))]
    return ("<h2>Reviewer verdicts</h2><p>Latest: <b>" + _e(rows[0][2]) + "</b></p>"
            + _table(("time (UTC)", "reviewer", "verdict", "note"), rows))


def _reference_note(result: CamResult) -> str:
    """Baselines (RandomCAM, SobelCAM) are captioned as the references a trustworthy map should beat."""
    from .methods.baselines import BASELINE_METHODS
    return " (baseline: a reference to beat)" if result.method in BASELINE_METHODS else ""


def _scaled(results: Sequence[CamResult], size: tuple[int, int], shared: bool, preprocessing=None) -> list[np.ndarray]:
    """Each result's map in [0, 1]: its own range, or one range shared by the class (non-contrast) maps
    of one unit family (maps of methods whose raw units differ never share a range)."""
    from .strength import family_ranges

    maps = [r.map for r in results]
    together = [i for i, r in enumerate(results) if r.contrast_index is None] if shared else []
    for i, (low, high) in zip(together, family_ranges([results[i] for i in together])):
        maps[i] = scale_to_range(results[i].raw, size, low, high, preprocessing)
    return maps


def _figure(picture, caption: str) -> str:
    data = base64.b64encode(to_png_bytes(picture)).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plain(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# No scripts, no external resources; the policy makes a browser refuse anything but inline images.
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; max-width: 320px; }} figure img {{ width: 100%; }}
figcaption {{ font-size: 0.85rem; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
code, td {{ font-family: ui-monospace, monospace; font-size: 0.85rem; word-break: break-all; }}
.muted {{ color: #666; }} .note {{ background: #fff7e0; padding: 0.6rem; border-left: 4px solid #e0a800; }}
</style></head>
<body>
{body}
</body></html>
"""
