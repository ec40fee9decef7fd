"""--engine ray (Ray Data, actors started here with ray.init(num_cpus=2)) writes the maps the local engine writes."""
from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from explainers.cli import main
from explainers.scale.rows import decode_raw
from explainers.scale.store import committed
from tests.scale_images import make_folder

pytest.importorskip("ray")


def _rows(store, name):
    return pa.concat_tables([pq.read_table(p) for p in committed(store, name)]).to_pylist()


def test_ray_engine_equals_local_engine(tmp_path):
    source = make_folder(tmp_path / "set", 24)
    stores = {}
    for engine in ("local", "ray"):
        stores[engine] = tmp_path / engine
        out = io.StringIO()
        with redirect_stdout(out):
            code = main(["run", str(source), "--out", str(stores[engine]), "--engine", engine, "--method", "gradcam",
                         "eigencam", "--targets", "top-k:2", "--batch-size", "5", "--quiet"])
        assert code == 0 and "24 images explained, 2 skipped" in out.getvalue()
    run = json.loads((stores["ray"] / "run.json").read_text())
    assert run["engine"] == "ray" and run["counts"]["maps"] == 24 * 2 * 2

    local, ray = ({(m["image_id"], m["method"], m["class_index"]): m for m in _rows(stores[e], "maps")}
                  for e in ("local", "ray"))
    assert sorted(local) == sorted(ray) and len(local) == 96
    for key, a in local.items():
        b = ray[key]
        x, y = (decode_raw(m["raw"], m["raw_shape"], m["raw_scale"]) for m in (a, b))
        assert np.allclose(x, y, rtol=2e-3, atol=2e-3 * x.max())  # float16 storage
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5) and a["rank"] == b["rank"]
    assert ({p["image_id"]: p["predicted_index"] for p in _rows(stores["local"], "predictions")}
            == {p["image_id"]: p["predicted_index"] for p in _rows(stores["ray"], "predictions")})
    assert sorted(s["image_id"] for s in _rows(stores["ray"], "skipped")) == ["cup/broken.jpg", "tabby/notes.txt"]
