"""The Evaluate page's four tabs: faithfulness, localisation, sanity check, stability.

Each tab returns the figures it shows, {"<method> · <metric>": value}, for the reviewer's report.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from explainers.io import load_image
from explainers.methods.catalog import resolve_method
from explainers.metrics import faithfulness, localisation, record, sanity, verdicts
from explainers.render import colorize, overlay, upsample

from . import evaluate as ev
from . import evaluate_figures as figs

COLUMNS = 3


def _names(job: ev.Job, methods: list[str]) -> dict[str, str]:
    return {m: ("Random map (reference)" if m == ev.RANDOM else resolve_method(m).display_name) for m in methods}


def faithfulness_tab(job: ev.Job, maps: dict[str, np.ndarray]) -> dict[str, object]:
    st.caption("Deletion removes the pixels the map ranks highest first; insertion reveals them first. "
               "A faithful map makes the class probability fall fast (LOW deletion area) and rise fast "
               "(HIGH insertion area). A random map with the same blockiness is the reference to beat.")
    steps_col, del_col, ins_col = st.columns(3)
    steps = steps_col.slider("Steps", 5, 100, step=5, key=ev.STEPS, help="Each step is one forward pass per curve.")
    deletion = del_col.selectbox("Deletion fills with", faithfulness.BASELINES, key=ev.DELETION_BASELINE)
    insertion = ins_col.selectbox("Insertion starts from", faithfulness.BASELINES, key=ev.INSERTION_BASELINE)
    left, right = st.columns(2)
    with_random = left.checkbox("Add a random map as reference", key=ev.RANDOM_REFERENCE)
    road = right.checkbox("Also ROAD and confidence change", key=ev.ROAD,
                          help="ROAD imputes 10 images per method (a sparse solve each), so it is slow.")
    seconds, source = ev.road_estimate(job)
    right.caption(f"ROAD: about {seconds:.0f} s per method here ({source}).")
    todo = dict(maps) | ({ev.RANDOM: ev.random_map(job)} if with_random else {})
    done = ev.faithfulness_run(job, todo, steps, deletion, insertion, road, None)
    if len(done) < len(todo) or (road and any(d["road"] is None for d in done.values())):
        passes = 2 * (steps + 1) * len(todo)
        if not st.button(f"Run faithfulness ({passes} forward passes)", key=ev.RUN_FAITHFULNESS, type="primary"):
            st.caption("Computed when you press the button, then kept for this image, class and settings.")
            if not done:
                return {}
        else:
            update, clear = ev.progress_bar()
            ev.faithfulness_run(job, todo, steps, deletion, insertion, road, update)
            clear()
            st.rerun()  # redraw from the cache, without the button
    names = _names(job, list(done))
    items = list(done.items())
    shown: dict[str, object] = record.faithfulness_settings(steps, deletion, insertion, ev.RANDOM in done, road)
    judged = _faithfulness_verdicts(done)
    if ev.RANDOM not in done:
        st.caption("Add the random map as reference to get a verdict per metric.")
    for row in range(0, len(items), COLUMNS):
        for column, (method, found) in zip(st.columns(COLUMNS), items[row:row + COLUMNS]):
            curves = found["curves"]
            shown[f"{names[method]} · deletion area ({steps} steps, {deletion})"] = round(curves.deletion.area, 4)
            shown[f"{names[method]} · insertion area ({steps} steps, {insertion})"] = round(curves.insertion.area, 4)
            column.plotly_chart(figs.curves_figure(curves, names[method]), width="stretch",
                                key=f"evaluate_curves_{method}")
            column.metric("Deletion area (lower is better)", f"{curves.deletion.area:.3f}")
            column.metric("Insertion area (higher is better)", f"{curves.insertion.area:.3f}")
            if found["road"] is not None:
                r, c = found["road"], found["confidence"]
                column.caption(f"ROAD combined {r.combined:+.3f} (higher is better) · drop in confidence "
                               f"{100 * c.drop:.1f}% · {'increase' if c.increase else 'no increase'} "
                               f"({c.original:.3f} → {c.masked:.3f} on image × map)")
                shown[f"{names[method]} · ROAD combined"] = round(r.combined, 4)
                shown[f"{names[method]} · drop in confidence"] = f"{100 * c.drop:.1f}%"
            for verdict in judged.get(method, []):
                column.markdown(_verdict_line(verdict))
                shown[f"{names[method]} · {verdict.metric} · verdict"] = verdict.sentence
    return shown


def _faithfulness_verdicts(done: dict[str, dict]) -> dict[str, list[verdicts.MetricVerdict]]:
    """{method: verdicts against the random map}; empty without the random reference."""
    if ev.RANDOM not in done:
        return {}
    scores = {m: verdicts.faithfulness_scores(d["curves"], d["road"], d["confidence"]) for m, d in done.items()}
    out: dict[str, list[verdicts.MetricVerdict]] = {}
    for verdict in verdicts.versus_reference(scores, ev.RANDOM):
        out.setdefault(verdict.method, []).append(verdict)
    return out


def _verdict_line(verdict: verdicts.MetricVerdict) -> str:
    """A coloured line: green when the method beats the reference, orange otherwise."""
    colour, mark = ("green", "✓") if verdict.beats else ("orange", "⚠")
    return f":{colour}[{mark} {verdict.metric}: **{verdict.label}**] ({verdict.value:.3f} vs {verdict.reference:.3f})"


def _ground_truth(job: ev.Job) -> tuple[np.ndarray | None, dict]:
    """The box from four numbers, or an uploaded mask, with what defines it (for the record);
    (None, {}) with a message when there is none."""
    width, height = job.image.size
    ev_defaults = {ev.BOX[0]: width // 4, ev.BOX[1]: height // 4, ev.BOX[2]: 3 * width // 4,
                   ev.BOX[3]: 3 * height // 4}
    if st.session_state.get(ev.BOX_CONTEXT) != (job.image_sha,) or any(k not in st.session_state for k in ev.BOX):
        st.session_state.update(ev_defaults)
        st.session_state[ev.BOX_CONTEXT] = (job.image_sha,)
    kind = st.radio("Ground truth", ["Box", "Mask"], key=ev.TRUTH_KIND, horizontal=True)
    if kind == "Box":
        columns = st.columns(4)
        labels = ("x0 (left)", "y0 (top)", "x1 (right)", "y1 (bottom)")
        limits = (width, height, width, height)
        box = [column.number_input(label, 0, limit, step=1, key=key)
               for column, label, limit, key in zip(columns, labels, limits, ev.BOX)]
        st.caption(f"Pixels of the {width} × {height} image; the box covers x0 ≤ x < x1 and y0 ≤ y < y1.")
        return localisation.ground_truth(height, width, box=box), {"box": box}
    upload = st.file_uploader("Mask (white = object; resized to the image)", type=["png", "bmp", "tif", "tiff",
                                                                                  "jpg", "jpeg"], key=ev.MASK)
    if upload is None:
        st.info("Upload a mask image, or enter a box.")
        return None, {}
    mask = np.asarray(load_image(upload.getvalue()).convert("L"))
    return localisation.ground_truth(height, width, mask=mask), {"mask": mask, "mask_name": upload.name}


def localisation_tab(job: ev.Job, maps: dict[str, np.ndarray]) -> dict[str, object]:
    truth, defined_by = _ground_truth(job)
    if truth is None:
        return {}
    left, right = st.columns(2)
    at_224 = left.number_input("Pointing tolerance (px at 224 px)", 0.0, 100.0, step=1.0, key=ev.TOLERANCE,
                               help="TorchRay uses 15 px; scaled here to the image's shorter side.")
    threshold = right.slider("IoU threshold (share of the map's maximum)", 0.05, 1.0, step=0.05, key=ev.THRESHOLD)
    tolerance = localisation.scaled_tolerance(*truth.shape, at_224)
    centre = localisation.centre_baseline(truth, tolerance)
    st.caption(f"Tolerance {tolerance:.1f} px. The image's centre point, the baseline to beat, is a "
               f"**{'hit' if centre.hit else 'miss'}** ({centre.distance:.1f} px from the object).")
    names = _names(job, list(maps))
    items = list(maps.items())
    shown: dict[str, object] = record.localisation_settings(*truth.shape, at_224, tolerance, threshold, **defined_by)
    reference = verdicts.localisation_scores(localisation.localise(ev.random_map(job), truth, tolerance, threshold))
    for row in range(0, len(items), COLUMNS):
        for column, (method, cam) in zip(st.columns(COLUMNS), items[row:row + COLUMNS]):
            found = localisation.localise(cam, truth, tolerance, threshold)
            shown[f"{names[method]} · pointing game"] = (f"{'hit' if found.pointing.hit else 'miss'} "
                                                         f"({found.pointing.distance:.1f} px)")
            shown[f"{names[method]} · energy in the ground truth"] = round(found.energy, 4)
            shown[f"{names[method]} · IoU at {threshold:.2f} of the maximum"] = round(found.iou, 4)
            picture = figs.localisation_picture(job.image, cam, truth, found, ev.DISPLAY_SIDE)
            verdict = "hit" if found.pointing.hit else "miss"
            column.image(picture, width="stretch",
                         caption=f"{names[method]} · {verdict} ({found.pointing.distance:.1f} px) · "
                                 f"energy {found.energy:.2f} · IoU {found.iou:.2f}")
            pointing = verdicts.pointing_verdict(found.pointing, centre)
            column.markdown(f":{'green' if found.pointing.hit and not centre.hit else 'orange'}[{pointing}]")
            shown[f"{names[method]} · pointing game · verdict"] = pointing
            scores = {method: verdicts.localisation_scores(found), ev.RANDOM: reference}
            for judged in verdicts.versus_reference(scores, ev.RANDOM):
                column.markdown(_verdict_line(judged))
                shown[f"{names[method]} · {judged.metric} · verdict"] = judged.sentence
    st.caption("White: ground truth · cyan: the map above the threshold · circle: the map's peak with the "
               "tolerance, green for a hit, red for a miss. Verdicts compare with the random map of the "
               "Faithfulness tab (energy, IoU) and with the image's centre point (pointing game).")
    return shown


def sanity_tab(job: ev.Job, methods: list[str]) -> dict[str, object]:
    st.caption("The model's weights are re-initialized from the top layer downward (cascading) or one block "
               "at a time (independent), on a copy of the model. A map that barely changes shows the image, "
               "not what the model learned (Adebayo et al., 2018).")
    groups = sanity.layer_groups(job.model.module)
    mode_col, steps_col, ref_col = st.columns(3)
    mode = mode_col.radio("Randomization", list(sanity.MODES), key=ev.SANITY_MODE, horizontal=True)
    st.session_state[ev.SANITY_STEPS] = min(int(st.session_state[ev.SANITY_STEPS]), len(groups))
    steps = steps_col.slider("Layer groups (from the top)", 1, len(groups), key=ev.SANITY_STEPS)
    reference = ref_col.checkbox("Add Guided Backprop (known to fail)", key=ev.SANITY_REFERENCE)
    chosen = list(dict.fromkeys(methods + (["guided_backprop"] if reference else [])))
    result = ev.sanity_run(job, chosen, mode, steps, None)
    if result is None:
        if not st.button(f"Run the sanity check ({steps + 1} explanations)", key=ev.RUN_SANITY, type="primary"):
            st.caption(f"Top groups first: {', '.join(groups[::-1][:steps])}.")
            return {}
        update, clear = ev.progress_bar()
        ev.sanity_run(job, chosen, mode, steps, update)
        clear()
        st.rerun()  # redraw from the cache, without the button
    names = _names(job, chosen)
    shown: dict[str, object] = {}
    for method, verdict in result.verdicts.items():
        (st.success if verdict.passes else st.warning)(verdict.sentence)
        shown[f"{names[method]} · sanity check ({result.mode}, {steps} groups)"] = verdict.sentence
    if not result.verdicts and result.mode == "cascading":
        st.caption(f"No verdict from fewer than {sanity.MIN_VERDICT_STEPS} layer groups: after one or two "
                   "random layers the answer is still down to chance.")
    elif not result.verdicts:
        st.caption("Independent randomization gives no verdict; it shows which blocks each map depends on.")
    st.plotly_chart(figs.similarity_figure(result, names), width="stretch", key="evaluate_similarity")
    for method in chosen:
        st.markdown(f"**{names[method]}**: original, then after each step")
        pictures = [colorize(result.original[method])] + [colorize(s.maps[method]) for s in result.steps]
        captions = ["original"] + [f"{s.group} · ρ {s.spearman[method]:.2f}" for s in result.steps]
        st.image(pictures, caption=captions, width=ev.THUMB_SIDE // 2 + 40)
    return shown


def stability_tab(job: ev.Job, methods: list[str]) -> dict[str, object]:
    st.caption("Each map is computed again on a mirrored, zoomed and noisy copy of the image and brought back; "
               "the per-pixel spread is the uncertainty (0 = perfectly stable; at most 0.5).")
    a, b, c, d = st.columns(4)
    mirror = a.checkbox("Mirror", key=ev.MIRROR)
    zooms = b.multiselect("Zoom factors", [0.8, 0.9, 1.1, 1.25], key=ev.ZOOMS)
    noise = c.slider("Noise (share of 0..255)", 0.0, 0.2, step=0.01, key=ev.NOISE)
    samples = d.number_input("Noisy copies", 0, 8, step=1, key=ev.NOISE_SAMPLES)
    result = ev.stability_run(job, methods, mirror, zooms, noise, samples, None)
    if result is None:
        views = int(mirror) + len(zooms) + (int(samples) if noise > 0 else 0)
        if not st.button(f"Run stability ({views + 1} explanations)", key=ev.RUN_STABILITY, type="primary"):
            return {}
        update, clear = ev.progress_bar()
        ev.stability_run(job, methods, mirror, zooms, noise, samples, update)
        clear()
        st.rerun()  # redraw from the cache, without the button
    shown = job.image.copy()
    shown.thumbnail((ev.DISPLAY_SIDE, ev.DISPLAY_SIDE))
    top = max(max(float(s.std_map.max()) for s in result.values()), 1e-6)  # one scale for every method
    items = list(result.items())
    for row in range(0, len(items), COLUMNS):
        for column, (method, found) in zip(st.columns(COLUMNS), items[row:row + COLUMNS]):
            spread = upsample(found.std_map, (shown.height, shown.width)) / top
            column.image(overlay(shown, spread, 0.6, "inferno"), width="stretch",
                         caption=f"{found.method_name} · mean spread {found.mean_std:.3f} · "
                                 f"mean ρ with the original {found.mean_spearman:.2f}")
    st.caption(f"Views: {', '.join(items[0][1].views)}. Colours share one scale (brightest = {top:.2f}).")
    return {f"{found.method_name} · {name}": value for found in result.values()
            for name, value in (("mean spread (stability)", round(found.mean_std, 4)),
                                ("mean ρ with the original (stability)", round(found.mean_spearman, 4)))}

