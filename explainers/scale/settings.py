"""A run's settings: what decides a store's rows. Imports no torch, so a Ray run can start before the engine loads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class RunSettings:
    """What decides a store's rows: a store holds one setting only (a rerun must match it)."""

    models: tuple[str, ...] = ("efficientnet_lite0",)
    methods: tuple[str, ...] = ("gradcam",)
    layers: Optional[tuple[str, ...]] = None  # None: each model's recommended layer
    targets: str = "predicted"

    def normalized(self) -> "RunSettings":
        """Method keys and the targets rule in their canonical spelling; bad names fail here."""
        from .engine import TargetRule, _one_pass_specs  # imports torch: not needed to start a Ray run

        methods = tuple(s.key for s in _one_pass_specs(self.methods))
        models = tuple(dict.fromkeys(self.models))
        return RunSettings(models, methods, tuple(dict.fromkeys(self.layers)) if self.layers else None,
                           str(TargetRule.parse(self.targets)))
