"""``python -m explainers report IMAGE --out report.html``: the reviewer's HTML report from the command line."""
from __future__ import annotations

import argparse
from pathlib import Path

from .fit import FITS

DEFAULT_MODEL = "efficientnet_lite0"


def add_report(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand to the parser."""
    p = sub.add_parser("report", help="write a self-contained HTML report for reviewers",
                       description="Explain an image and write one HTML file with the image, the prediction, "
                                   "the maps side by side, the settings and their hash.")
    p.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF or DICOM)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default: {DEFAULT_MODEL})")
    p.add_argument("--method", action="extend", nargs="+", metavar="NAME",
                   help="method key(s) (default: gradcam)")
    p.add_argument("--class", dest="classes", action="extend", nargs="+", type=int, metavar="N",
                   help="class index(es) to explain (default: the top-1 class)")
    p.add_argument("--layer", action="extend", nargs="+", metavar="NAME",
                   help="layer name(s) (default: the model's recommended layer)")
    p.add_argument("--frame", type=int, default=0, help="DICOM: the frame of a multi-frame file (default: 0)")
    p.add_argument("--window", type=float, nargs=2, metavar=("CENTER", "WIDTH"),
                   help="DICOM: window center and width (default: the file's own)")
    p.add_argument("--fit", choices=FITS, default="squash",
                   help="how a non-square image meets the model's input: squash (whole image stretched, default), "
                        "letterbox (whole image padded with the mean color) or crop (the model's own resize and "
                        "centre crop; maps are NaN outside the crop)")
    p.add_argument("--colormap", default="jet", help="matplotlib colormap (default: jet)")
    p.add_argument("--opacity", type=float, default=0.5, help="heatmap opacity in [0, 1] (default: 0.5)")
    p.add_argument("--shared-scale", action="store_true",
                   help="draw all class maps on one shared range, so a weaker map looks weaker")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: CAMSCOPE_DEVICE, else the best)")
    p.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    p.add_argument("--dicom-file-name", action="store_true",
                   help="name a DICOM input by its file name in the report (default: by the hash of its bytes, "
                        "since DICOM file names often carry the patient's name)")
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from .cli_checks import load_model_warning, writable_file, write_file
    from .errors import ExplainerError
    from .file_names import input_label_of_path
    from .io import load_image
    from .render import colorize

    if not 0.0 <= args.opacity <= 1.0:
        raise ExplainerError(f"--opacity must be between 0 and 1, not {args.opacity}")
    colorize([[0.0]], args.colormap)  # a bad colormap fails before the slow part
    out = writable_file(args.out)  # and so does an output that cannot be written
    image = load_image(args.image, frame=args.frame, window=tuple(args.window) if args.window else None)
    from .pipeline import explain
    from .report import build_report

    model = load_model_warning(args.model, device=args.device).with_fit(args.fit)
    result = explain(model, image, methods=args.method or ["gradcam"], classes=args.classes, layers=args.layer)
    name = Path(input_label_of_path(args.image, args.dicom_file_name)).name
    report = build_report(model, image, result.results, result.predictions, image_name=name, colormap=args.colormap, opacity=args.opacity, shared_scale=args.shared_scale)
    write_file(out, report.html.encode("utf-8"))
    print(f"wrote {out} ({len(report.map_sha256)} map(s)); input hash {report.input_sha256}")
    return 0
