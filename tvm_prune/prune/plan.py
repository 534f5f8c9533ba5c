"""The pruning plan: what each method decided, frozen and JSON-serialisable.

A :class:`PruningPlan` holds, per layer, the magnitude threshold (on the effective weights, or
the raw ones for the baseline), the counts it prunes and the layer's weight statistics; the
method's steps (greedy: subject layer, prediction and measurement per step; behaviour: the
bisection probes); and the measured result. Masks are not stored: they follow from the
thresholds and the model's weights (:func:`tvm_prune.prune.apply.layer_masks`), and the report
records a checksum of each so that a replay can be verified.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerPlan:
    """The decision for one layer: prune ``|w| < threshold`` (``w`` effective if so judged)."""

    weight: str
    op: str
    threshold: float
    size: int
    pruned: int
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        return self.pruned / self.size if self.size else 0.0


@dataclass(frozen=True)
class PruningPlan:
    """Everything one pruning method decided, in the order it decided it.

    Attributes
    ----------
    method : str
        ``magnitude``, ``layerwise``, ``greedy`` or ``behavior``.
    settings : Mapping
        The options the method ran with (target sparsity, tolerance, metric, effective
        weights, bias correction, data source).
    layers : tuple[LayerPlan, ...]
        One entry per prunable layer, in program order.
    steps : tuple[Mapping, ...]
        Method-specific trace; greedy steps hold ``layer``, ``layer_sparsity``,
        ``predicted`` and ``measured`` so that the predictor's error is visible.
    result : Mapping
        Measured outcome: ``sparsity``, dense and pruned ``loss``/``accuracy`` where known.
    """

    method: str
    settings: Mapping[str, Any]
    layers: tuple[LayerPlan, ...]
    steps: tuple[Mapping[str, Any], ...] = ()
    result: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        size = sum(layer.size for layer in self.layers)
        return sum(layer.pruned for layer in self.layers) / size if size else 0.0

    @property
    def thresholds(self) -> dict[str, float]:
        return {layer.weight: layer.threshold for layer in self.layers}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "settings": dict(self.settings),
            "sparsity": self.sparsity,
            "layers": [{**asdict(layer), "sparsity": layer.sparsity} for layer in self.layers],
            "steps": [dict(step) for step in self.steps],
            "result": dict(self.result),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruningPlan:
        layers = tuple(
            LayerPlan(
                weight=str(item["weight"]),
                op=str(item["op"]),
                threshold=float(item["threshold"]),
                size=int(item["size"]),
                pruned=int(item["pruned"]),
                stats=dict(item.get("stats", {})),
            )
            for item in data["layers"]
        )
        return cls(
            method=str(data["method"]),
            settings=dict(data.get("settings", {})),
            layers=layers,
            steps=tuple(dict(step) for step in data.get("steps", ())),
            result=dict(data.get("result", {})),
        )

    def table(self) -> str:
        """A readable per-layer table plus the result line."""
        rows = [f"{'layer':<32} {'op':<16} {'params':>9} {'threshold':>11} {'sparsity':>9}"]
        for layer in self.layers:
            rows.append(
                f"{layer.weight[:32]:<32} {layer.op:<16} {layer.size:>9} "
                f"{layer.threshold:>11.4g} {layer.sparsity:>8.1%}"
            )
        rows.append(f"total sparsity {self.sparsity:.1%} ({self.method})")
        shown = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in self.result.items()
            if isinstance(v, int | float | str)
        )
        if shown:
            rows.append(shown)
        return "\n".join(rows)
