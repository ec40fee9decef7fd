"""CAMscope at scale: the batched engine, runs over whole datasets (in-process or on Ray Data),
the Parquet CAM store they write, and DuckDB queries over it. (The model cut at its target layer that the
batched engine runs through is ``methods/layer_split.py``, shared with Smooth Grad-CAM++.)

    engine.py     explain_batch: B images, several methods, one forward + one backward per class slot
    sources.py    what to explain: a folder, an ImageFolder zip, or a CSV/Parquet listing
    rows.py       a batch's results as Arrow tables (maps, predictions, skipped) and map statistics
    settings.py   a run's settings (no torch: a Ray run starts before the engine is imported)
    worker.py     BatchWorker: a batch of images -> its three tables (both engines)
    store.py      the store folder: settings, committed part files, resume
    run.py        the local engine and the loop both engines share
    ray_engine.py the same work as a Ray Data pipeline
    query.py      DuckDB views over a store
"""
