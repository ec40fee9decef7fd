"""The Review page's Strategies view on the planted-shortcut store (AppTest, CPU)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from shortcut_set import planted_store  # noqa: E402
from tests.review_store import open_review  # noqa: E402

@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stores")
    planted_store(root)  # root/store, root/set
    return root


def test_strategies_view_shows_the_marker_cluster_and_its_eigengap(stores, monkeypatch):
    at = open_review(monkeypatch, stores, "Strategies")
    assert [h.value for h in at.subheader] == ["A: 60 images, 2 strategies"]
    texts = [m.value for m in at.markdown]
    assert "**Cluster 0**: 30 images, accuracy 100%" in texts and "**Cluster 1**: 30 images, accuracy 100%" in texts
    assert at.caption[0].value.startswith("2 clusters: the largest gap is between eigenvalues 2 and 3")
    assert len(at.get("plotly_chart")) == 1
    captions = [c for image in at.image for c in image.captions]
    assert sum("marker-" in c for c in captions) == 6  # 3 representatives + 3 outliers of the marker cluster
    assert all(" · scale: " in c and " · strength: " in c for c in captions)  # every map says its scale and strength
    assert sum("scale: fixed 0 to 1" in c and "median raw max" in c for c in captions) == 2  # the mean maps
    at.selectbox(key="review_strategies_class").set_value((1, "B")).run()
    assert not at.exception and not at.error
    assert at.subheader[0].value.startswith("B: 60 images, ")
    at.selectbox(key="review_strategies_method").set_value("eigencam").run()
    assert not at.exception and not at.error
