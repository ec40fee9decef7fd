"""Verdicts: does a method's score beat a reference that knows nothing (a random map, the image's centre)?

A metric alone says little: an insertion area of 0.54 sounds fine until a random map scores 0.66.
Each verdict compares one method's score on one metric with the reference's score on the same
image, class and settings, and says in words whether the method beats it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from .faithfulness import ConfidenceChange, Faithfulness, RoadScores
from .localisation import Localisation, PointingResult

HIGHER_IS_BETTER = {"deletion area": False, "insertion area": True, "ROAD combined": True,
                    "drop in confidence": False, "energy in the ground truth": True, "IoU": True}
MARGIN = 0.01  # scores (all on a 0..1 scale) closer than this to the reference's count as a tie


@dataclass(frozen=True)
class MetricVerdict:
    """One method against the reference on one metric."""

    method: str
    metric: str  # a key of HIGHER_IS_BETTER
    value: float
    reference: float
    reference_name: str = "the random map"
    margin: float = MARGIN

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]

    @property
    def outcome(self) -> str:
        """"beats", "ties" (within ``margin``) or "loses"."""
        gain = (self.value - self.reference) * (1.0 if self.higher_is_better else -1.0)
        return "beats" if gain > self.margin else "loses" if gain < -self.margin else "ties"

    @property
    def beats(self) -> bool:
        return self.outcome == "beats"

    @property
    def label(self) -> str:
        """A few words for a table cell: "beats random", "no better than random", "does not beat random"."""
        short = self.reference_name.replace("the ", "").replace(" map", "")
        return {"beats": f"beats {short}", "ties": f"no better than {short}",
                "loses": f"does not beat {short}"}[self.outcome]

    @property
    def sentence(self) -> str:
        """E.g. "Insertion area 0.538 does not beat the random map's 0.658 (higher is better)."."""
        verb = {"beats": "beats", "ties": "is no better than", "loses": "does not beat"}[self.outcome]
        tie = f", within {self.margin:g}" if self.outcome == "ties" else ""
        better = "higher" if self.higher_is_better else "lower"
        return (f"{self.metric[0].upper()}{self.metric[1:]} {self.value:.3f} {verb} {self.reference_name}'s "
                f"{self.reference:.3f} ({better} is better{tie}).")


def faithfulness_scores(curves: Faithfulness, road: Optional[RoadScores] = None,
                        confidence: Optional[ConfidenceChange] = None) -> dict[str, float]:
    """{metric: score} of one map's faithfulness results (ROAD and confidence only when given)."""
    scores = {"deletion area": curves.deletion.area, "insertion area": curves.insertion.area}
    if road is not None:
        scores["ROAD combined"] = road.combined
    if confidence is not None:
        scores["drop in confidence"] = confidence.drop
    return scores


def localisation_scores(found: Localisation) -> dict[str, float]:
    """{metric: score} of one map's localisation (the pointing game has its own verdict)."""
    return {"energy in the ground truth": found.energy, "IoU": found.iou}


def versus_reference(scores: Mapping[str, Mapping[str, float]], reference: str,
                     reference_name: str = "the random map", margin: float = MARGIN) -> list[MetricVerdict]:
    """A verdict per metric per method against ``scores[reference]``.

    Args:
        scores: {method: {metric: score}}, the reference among them.
        reference: the key of the reference in ``scores``.
    Returns:
        Verdicts in the order of ``scores`` and of each method's metrics (the reference left out);
        metrics the reference has no score for are skipped.
    """
    base = scores[reference]
    return [MetricVerdict(method, metric, float(value), float(base[metric]), reference_name, margin)
            for method, metrics in scores.items() if method != reference
            for metric, value in metrics.items() if metric in base and metric in HIGHER_IS_BETTER]


def pointing_verdict(found: PointingResult, centre: PointingResult) -> str:
    """The pointing game against the image's centre point, in words."""
    if found.hit and not centre.hit:
        return "Pointing game: hit, where the image's centre misses."
    if found.hit:
        return "Pointing game: hit, but the image's centre hits too: no evidence the map beats a guess."
    if centre.hit:
        return "Pointing game: miss, where the image's centre hits: does not beat a guess."
    return "Pointing game: miss (the image's centre misses too)."
