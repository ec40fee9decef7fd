"""SpRAy: the distinct strategies a model uses for one class, found by clustering its maps.

Spectral relevance analysis (Lapuschkin et al., "Unmasking Clever Hans predictors and assessing what
machines really learn", Nature Communications 2019): per class, every image's map is downsized to a
small common grid and normalized, a k-nearest-neighbour graph links similar maps, and spectral
clustering splits the graph; the number of clusters is where the normalized Laplacian's smallest
eigenvalues show their largest gap (the eigengap). A cluster whose mean map sits on a corner, a
watermark or a background is a strategy worth a look ("Clever Hans").

Choices (the paper leaves them open):
    grid        each map is resized to GRID x GRID (default 16) with area averaging when it shrinks and
                bilinear interpolation when it grows, then divided by its own maximum (so every map
                lies in [0, 1], as it is drawn; an all-zero map stays zero). Distances are Euclidean
                on these GRID*GRID vectors.
    graph       k nearest neighbours with k = min(10, n - 1), made symmetric (i~j if either is among
                the other's neighbours), binary weights, as in SpRAy; sparse, so 50,000 maps fit.
    k           the eigengap of L = I - D^-1/2 A D^-1/2 among its MAX_CLUSTERS + 1 smallest eigenvalues;
                fewer than MIN_IMAGES images: one cluster, with the reason.
    centre      the cluster's mean map (in map space, the one shown); representatives are the images
                closest to it, outliers the farthest; ``distance_to_centre`` is that Euclidean distance.
Clusters are numbered by size (0 = the largest). Deterministic: fixed ``random_state``.

Example:
    >>> found = find_strategies("store/", StrategySettings(method="gradcam"))
    >>> [(c.class_name, [k.size for k in c.clusters]) for c in found.classes]
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from ..errors import ExplainerError

GRID = 16
NEIGHBOURS = 10
MAX_CLUSTERS = 8
MIN_IMAGES = 10
DENSE = 2000  # up to this many images: dense exact eigenvalues, ARPACK embedding; above: sparse solvers
SHOWN = 3  # representatives and outliers per cluster


class StrategiesError(ExplainerError):
    """The store holds no maps for these settings (method, model, layer, classes)."""


@dataclass(frozen=True)
class StrategySettings:
    method: str = "gradcam"
    model: Optional[str] = None  # None: the store's first model
    layer: Optional[str] = None  # None: that model's first layer in the store
    by: str = "predicted"  # "predicted": maps of the predicted class (rank 1); "true": of the true class
    classes: Optional[tuple[str, ...]] = None  # class indices or names; None: every class
    grid: int = GRID
    max_clusters: int = MAX_CLUSTERS
    min_images: int = MIN_IMAGES
    shown: int = SHOWN
    random_state: int = 0


@dataclass(frozen=True)
class Cluster:
    index: int  # 0 = the largest cluster of its class
    size: int
    mean_map: np.ndarray  # (grid, grid) in [0, 1]: the mean of the members' normalized maps
    accuracy: Optional[float]  # fraction predicted correctly; None when no member's label is known
    representatives: list[str]  # image_ids closest to the mean map, closest first
    outliers: list[str]  # image_ids farthest from it, farthest first
    strength: Optional[float] = None  # the median of the members' raw maxima (their maps' strength)


@dataclass(frozen=True)
class ClassStrategies:
    class_index: int
    class_name: str
    images: int
    clusters: list[Cluster]
    eigenvalues: list[float]  # the smallest eigenvalues of the normalized Laplacian (empty: too few images)
    eigengap: Optional[float]  # eigenvalues[k] - eigenvalues[k - 1] for the k chosen
    reason: str  # why this many clusters, in a sentence


@dataclass(frozen=True)
class ImageStrategy:
    image_id: str
    class_index: int
    cluster: int
    distance_to_centre: float
    is_representative: bool
    is_outlier: bool
    correct: Optional[bool]


@dataclass(frozen=True)
class Strategies:
    store: str
    model: str
    layer: str
    method: str
    by: str
    grid: int
    classes: list[ClassStrategies]
    images: list[ImageStrategy] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # shown image_id -> (grid, grid) map
    strengths: dict[str, float] = field(default_factory=dict, repr=False)  # shown image_id -> its raw map's max


def downsize(raw: np.ndarray, grid: int = GRID) -> np.ndarray:
    """A map on a (grid, grid) grid, divided by its maximum (NaN and negatives count as 0)."""
    raw = np.maximum(np.nan_to_num(np.asarray(raw, np.float32), nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    shrinking = raw.shape[0] > grid or raw.shape[1] > grid
    small = cv2.resize(raw, (grid, grid), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    small = np.maximum(small, 0.0)
    top = float(small.max())
    return small / top if top > 0 else small


def knn_affinity(vectors: np.ndarray, neighbours: int = NEIGHBOURS):
    """(n, n) sparse symmetric 0/1 affinity of the k-nearest-neighbour graph (no self loops)."""
    from sklearn.neighbors import kneighbors_graph

    k = max(1, min(neighbours, len(vectors) - 1))
    graph = kneighbors_graph(vectors, k, mode="connectivity", include_self=False)
    return graph.maximum(graph.T).tocsr()


def laplacian_eigenvalues(affinity, count: int) -> np.ndarray:
    """The ``count`` smallest eigenvalues of the normalized Laplacian L = I - D^-1/2 A D^-1/2, ascending.

    Up to DENSE images: all of L's eigenvalues (exact). Above: ARPACK on the normalized adjacency,
    whose largest eigenvalues are 1 minus L's smallest (a sparse n x n graph, never a dense one).
    """
    from scipy.linalg import eigh
    from scipy.sparse import diags
    from scipy.sparse.csgraph import laplacian
    from scipy.sparse.linalg import eigsh

    n = affinity.shape[0]
    count = min(count, n)
    if n <= DENSE:
        values = eigh(laplacian(affinity.toarray(), normed=True), eigvals_only=True, subset_by_index=[0, count - 1])
    else:
        degree = np.asarray(affinity.sum(axis=1)).ravel()
        scale = diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
        v0 = np.random.default_rng(0).uniform(-1, 1, n)  # ARPACK's start vector, fixed: deterministic
        top = eigsh(scale @ affinity @ scale, k=count, which="LA", v0=v0, return_eigenvectors=False)
        values = np.sort(1.0 - top)
    return np.clip(values, 0.0, None)


def eigengap_k(eigenvalues: Sequence[float], max_clusters: int = MAX_CLUSTERS) -> tuple[int, float]:
    """(k, gap): k in 1..max_clusters maximizing eigenvalues[k] - eigenvalues[k - 1] (first on ties)."""
    values = np.asarray(eigenvalues, np.float64)
    gaps = np.diff(values[:max_clusters + 1])
    if gaps.size == 0:
        return 1, 0.0
    k = int(np.argmax(gaps)) + 1
    return k, float(gaps[k - 1])


def cluster_maps(maps: np.ndarray, settings: StrategySettings = StrategySettings()
                 ) -> tuple[np.ndarray, list[float], Optional[float], str]:
    """Cluster (n, grid, grid) maps: (labels numbered by size, eigenvalues, eigengap, reason)."""
    n = len(maps)
    if n < settings.min_images:
        return np.zeros(n, int), [], None, (f"one cluster: only {n} image{'s' if n != 1 else ''}; "
                                            f"at least {settings.min_images} are needed to look for strategies")
    vectors = maps.reshape(n, -1).astype(np.float64)
    affinity = knn_affinity(vectors)
    eigenvalues = laplacian_eigenvalues(affinity, settings.max_clusters + 1)
    k, gap = eigengap_k(eigenvalues, settings.max_clusters)
    reason = f"{k} cluster{'s' if k != 1 else ''}: the largest gap is between eigenvalues {k} and {k + 1} ({gap:.3g})"
    if k == 1:
        return np.zeros(n, int), eigenvalues.tolist(), gap, reason
    from sklearn.cluster import SpectralClustering

    with warnings.catch_warnings():  # separate strategies often make separate graph components: expected
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        # ARPACK's shift-invert factorizes the graph: fine up to DENSE images, minutes at 20,000; LOBPCG is not
        solver = "arpack" if n <= DENSE else "lobpcg"
        labels = SpectralClustering(n_clusters=k, affinity="precomputed", assign_labels="cluster_qr",
                                    eigen_solver=solver, random_state=settings.random_state).fit_predict(affinity)
    found, first, sizes = np.unique(labels, return_index=True, return_counts=True)
    renumber = np.empty(int(found.max()) + 1, np.int64)
    renumber[found[np.lexsort((first, -sizes))]] = np.arange(len(found))  # largest first, ties by first member
    return renumber[labels], eigenvalues.tolist(), gap, reason


def _class_result(index: int, name: str, ids: list[str], maps: np.ndarray, correct: list[Optional[bool]],
                  settings: StrategySettings, tops: Optional[Sequence[float]] = None
                  ) -> tuple[ClassStrategies, list[ImageStrategy]]:
    labels, eigenvalues, gap, reason = cluster_maps(maps, settings)
    clusters, images = [], []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        mean = maps[members].mean(axis=0)
        distances = np.linalg.norm((maps[members] - mean).reshape(len(members), -1), axis=1)
        order = np.argsort(distances, kind="stable")
        shown = min(settings.shown, len(members))
        near, far = members[order[:shown]], members[order[::-1][:shown]]
        known = [correct[i] for i in members if correct[i] is not None]
        clusters.append(Cluster(c, len(members), mean.astype(np.float32),
                                sum(known) / len(known) if known else None,
                                [ids[i] for i in near], [ids[i] for i in far],
                                None if tops is None else float(np.median([tops[i] for i in members]))))
        for i, d in zip(members, distances):
            images.append(ImageStrategy(ids[i], index, c, float(d), i in near, i in far, correct[i]))
    return ClassStrategies(index, name, len(ids), clusters, eigenvalues, gap, reason), images


def find_strategies(store: str | Path, settings: StrategySettings = StrategySettings()) -> Strategies:
    """SpRAy over a store, per class (see the module docstring).

    Raises:
        StrategiesError: the method, model, layer or classes are not in the store.
        StoreError: the folder is not a store.
    """
    from .strategy_maps import load_maps

    loaded = load_maps(store, settings)
    classes, images, maps, strengths = [], [], {}, {}
    try:
        for index, name in loaded.classes:
            rows = loaded.rows(index)
            ids = [r[0] for r in rows]
            grids = np.stack([downsize(r[1], settings.grid) for r in rows])
            tops = [r[3] for r in rows]  # each raw map's strength, as the run stored it
            result, members = _class_result(index, name, ids, grids, [r[2] for r in rows], settings, tops)
            classes.append(result)
            images.extend(members)
            shown = {i for c in result.clusters for i in c.representatives + c.outliers}
            maps.update((i, g) for i, g in zip(ids, grids) if i in shown)
            strengths.update((i, t) for i, t in zip(ids, tops) if i in shown)
    finally:
        loaded.close()
    return Strategies(str(store), loaded.model, loaded.layer, settings.method, settings.by, settings.grid,
                      classes, images, maps, strengths)
