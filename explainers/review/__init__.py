"""Reviewing a CAM store (made by ``python -m explainers run``): the engine side of the Review page.

Modules (each small, none imports Streamlit):
    stores.py        the stores a deployment offers (CAMSCOPE_STORES_DIR); a store's run settings; the
                     cache key every view uses (the committed parts)
    browse.py        filters and sorts over a store with DuckDB; one page of gallery rows
    images.py        a stored image's original from the run's SOURCE (never outside it); a stored map
                     drawn; the caption that states every map's scale and strength
    verdicts.py      reviewer verdicts in STORE/reviews.sqlite (WAL): record, list, export
    strategies.py    SpRAy: per class, spectral clustering of downsized maps (eigengap)
    strategy_maps.py the maps SpRAy clusters, read from the store (one per image and class)
    strategies_report.py  strategies.csv and the self-contained strategies.html
    timeline.py      one image's maps across checkpoints; drift (SSIM, rank correlation) per pair
    strata.py        localisation (pointing game, energy in box) by stratum with bootstrap CIs
"""
