"""The Review page's Strategies view on the planted-shortcut store (AppTest, CPU)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from shortcut_set import planted_store  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stores")
    planted_store(root)  # root/store, root/set
    return root


def test_strategies_view_shows_the_marker_cluster_and_its_eigengap(stores, monkeypatch):
    monkeypatch.setenv("CAMSCOPE_STORES_DIR", str(stores))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/review.py").run()
    at.radio(key="review_view").set_value("Strategies").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert [h.value for h in at.subheader] == ["A: 60 images, 2 strategies"]
    texts = [m.value for m in at.markdown]
    assert "**Cluster 0**: 30 images, accuracy 100%" in texts and "**Cluster 1**: 30 images, accuracy 100%" in texts
    assert at.caption[0].value.startswith("2 clusters: the largest gap is between eigenvalues 2 and 3")
    assert len(at.get("plotly_chart")) == 1
    captions = [c for image in at.image for c in image.captions]
    assert sum("marker-" in c for c in captions) == 6  # 3 representatives + 3 outliers of the marker cluster
    at.selectbox(key="review_strategies_class").set_value((1, "B")).run()
    assert not at.exception and not at.error
    assert at.subheader[0].value.startswith("B: 60 images, ")
    at.selectbox(key="review_strategies_method").set_value("eigencam").run()
    assert not at.exception and not at.error
