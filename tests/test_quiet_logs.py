"""Quiet logs: an ordinary explanation, slow methods included, writes nothing to stderr (the server
log): no tqdm bar (pytorch-grad-cam's Ablation-CAM prints one), no third-party warning."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALL_KINDS = ["gradcam", "gradcam++", "eigencam", "layercam", "scorecam", "ablationcam", "fullgrad", "shapleycam",
             "finercam", "guided_gradcam"]
CODE = f"""
from explainers import explain, load_image, load_model, predict
model = load_model("efficientnet_lite0", device="cpu")
image = load_image("assets/samples/cat.jpg")
predict(model, image)
ex = explain(model, image, methods={ALL_KINDS!r}, layers=["blocks.1"], top_k=2, batch_size=8,
             progress=lambda fraction, text: None)
print(len(ex.results))
"""


def test_explain_with_slow_methods_writes_nothing_to_stderr():
    # -W default: every warning is printed once (Python hides some categories by default)
    done = subprocess.run([sys.executable, "-W", "default", "-c", CODE], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(2 * len(ALL_KINDS))  # one map per (method, class)
    assert done.stderr == "", done.stderr[-3000:]
