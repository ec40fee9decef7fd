"""Trust metrics for explanation maps: faithfulness, localisation, sanity checks and stability.

Example:
    >>> from explainers import load_model, load_image, explain
    >>> from explainers.metrics import deletion_insertion, ground_truth, localise, sanity_check
    >>> model, image = load_model("efficientnet_lite0"), load_image("cat.jpg")
    >>> cam = explain(model, image).results[0]
    >>> scores = deletion_insertion(model, image, cam.map, steps=50)
    >>> scores.deletion.area, scores.insertion.area  # low deletion and high insertion are faithful
    >>> localise(cam.map, ground_truth(image.height, image.width, box=(80, 40, 360, 280))).pointing.hit
    >>> sanity_check(model, image, ["gradcam", "guided_backprop"]).verdicts["gradcam"].sentence
    >>> versus_reference({"gradcam": {"insertion area": 0.538}, "random": {"insertion area": 0.658}},
    ...                  "random")[0].sentence  # "Insertion area 0.538 does not beat the random map's 0.658 ..."
"""
from .faithfulness import (BASELINES, ConfidenceChange, Curve, Faithfulness, RoadScores, average_drop,
                           confidence_change, curve, deletion_insertion, increase_in_confidence,
                           random_saliency, road)
from .localisation import (Localisation, PointingResult, box_mask, centre_baseline, energy, ground_truth, iou,
                           localise, pointing_game, scaled_tolerance)
from .sanity import SanityResult, SanityStep, Verdict, layer_groups, sanity_check
from .stability import Stability, View, make_views, spread, stability_check
from .verdicts import MetricVerdict, pointing_verdict, versus_reference

__all__ = [
    "BASELINES", "ConfidenceChange", "Curve", "Faithfulness", "RoadScores", "average_drop", "confidence_change",
    "curve", "deletion_insertion", "increase_in_confidence", "random_saliency", "road",
    "Localisation", "PointingResult", "box_mask", "centre_baseline", "energy", "ground_truth", "iou", "localise",
    "pointing_game", "scaled_tolerance",
    "SanityResult", "SanityStep", "Verdict", "layer_groups", "sanity_check",
    "Stability", "View", "make_views", "spread", "stability_check",
    "MetricVerdict", "pointing_verdict", "versus_reference",
]
