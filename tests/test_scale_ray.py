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
from explainers.cli_run import start_early
from explainers.scale import run as scale_run
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
        out, argv = io.StringIO(), ["run", str(source), "--out", str(stores[engine]), "--engine", engine, "--method",
                                    "gradcam", "eigencam", "--targets", "top-k:2", "--batch-size", "5", "--quiet"]
        start_early(argv)  # as python -m explainers does: Ray and its actors start before the engine is imported
        assert len(scale_run._STARTED) == (engine == "ray")
        with redirect_stdout(out):
            code = main(argv)
        assert not scale_run._STARTED  # the run took the started pipeline over
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


def test_ray_starts_before_the_engine_is_imported():
    import subprocess
    import sys

    code = ("import sys; import explainers.cli_run, explainers.scale.run, explainers.scale.ray_engine, "
            "explainers.scale.settings; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr  # so Ray and its actors start during torch's import


def test_a_refused_ray_run_leaves_no_ray_running(tmp_path, capsys):
    import ray

    source = make_folder(tmp_path / "set", 3, bad=False)
    (tmp_path / "file").write_text("not a store")
    code = main(["run", str(source), "--out", str(tmp_path / "file"), "--engine", "ray", "--quiet"])
    assert code == 2 and "is a file; give a folder for the store" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_rows_another_run_committed_meanwhile_are_left_out():
    from explainers.scale.run import _without

    tables = {"maps": pa.table({"image_id": ["a", "b", "a"], "x": [1, 2, 3]}), "skipped": pa.table({"image_id": ["c"]})}
    (got,) = _without([tables], {"a", "c"})
    assert got["maps"].column("x").to_pylist() == [2] and got["skipped"].num_rows == 0
    assert list(_without([tables], set())) == [tables]


def test_a_ray_already_running_here_is_joined_and_ray_data_stays_quiet(tmp_path):
    """Without --address, a Ray started here by ``ray start`` is joined, as a plain ``ray.init()`` does (before:
    a traceback, "num_cpus ... must not be provided"); --quiet prints the summary, not Ray Data's log lines."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    ray_cli = str(Path(sys.executable).with_name("ray"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    subprocess.run([ray_cli, "start", "--head", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True, timeout=120, env=env)
    try:
        source = make_folder(tmp_path / "set", 4, bad=False)
        done = subprocess.run([sys.executable, "-m", "explainers", "run", str(source), "--out", str(tmp_path / "store"),
                               "--engine", "ray", "--quiet"], capture_output=True, text=True, timeout=300, env=env,
                              cwd=Path(__file__).parents[1])
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4 images explained, 0 skipped" in done.stdout
    assert "execution finished" not in done.stderr and "Progress bars disabled" not in done.stderr
