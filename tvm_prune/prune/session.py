"""One pruning run's shared state: layers, judged magnitudes, the evaluator and the loss.

The *loss* every method minimises or bounds is, in this order of preference:

* ``accuracy`` objective: the accuracy drop in percentage points against the dense model
  (labels or a user accuracy callable needed);
* a behaviour metric from :mod:`.metrics` against the dense outputs (no labels needed).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..model import Model
from .apply import COMPENSATIONS, layer_changes, layer_masks
from .data import CalibrationData
from .distribution import weight_statistics
from .engine import Evaluator, layer_input_moments
from .layers import PrunableLayer, effective_weight, find_layers
from .metrics import METRICS, accuracy
from .plan import LayerPlan

logger = logging.getLogger(__name__)

AccuracyFn = Callable[[Sequence[np.ndarray]], float]


class PruneSession:
    """Evaluate any set of per-layer thresholds on the calibration data.

    Parameters
    ----------
    model : Model
    data : CalibrationData
    metric : str
        Behaviour metric name (see :data:`.metrics.METRICS`).
    objective : str
        ``accuracy`` (labels or ``accuracy_fn`` required) or ``behavior`` (the metric).
    effective : bool
        Judge magnitudes on BN-folded weights.
    compensation : str
        What corrects for the pruned weights (:data:`.apply.COMPENSATIONS`): ``none``, ``bias``
        (each pruned layer's bias, for its expected output shift) or ``least-squares`` (the
        kept weights and the bias re-solved to reproduce the layer's output).
    accuracy_fn : callable, optional
        Outputs (list of stacked arrays) -> accuracy in [0, 1]; replaces label accuracy.
    """

    def __init__(
        self,
        model: Model,
        data: CalibrationData,
        *,
        metric: str = "kl",
        objective: str = "behavior",
        effective: bool = True,
        compensation: str = "least-squares",
        accuracy_fn: AccuracyFn | None = None,
        progress: bool = False,
    ):
        self.model = model
        self.data = data
        self.metric = metric
        self.effective = effective
        if compensation not in COMPENSATIONS:
            from ..errors import TvmPruneError

            raise TvmPruneError(
                f"unknown compensation '{compensation}'; choose from {', '.join(COMPENSATIONS)}"
            )
        self.compensation = compensation
        self.progress = progress
        self.layers: tuple[PrunableLayer, ...] = find_layers(model.mod, model.params)
        if not self.layers:
            from ..errors import TvmPruneError

            raise TvmPruneError(f"{model.source}: no prunable layer (conv2d, matmul with weights)")
        self.judged = {
            layer.weight: effective_weight(layer, model.params)
            if effective
            else np.asarray(model.params[layer.weight])
            for layer in self.layers
        }
        self.magnitudes = {name: np.abs(w) for name, w in self.judged.items()}
        self.sorted_magnitudes = {k: np.sort(v.ravel()) for k, v in self.magnitudes.items()}
        self.sizes = {
            layer.weight: int(self.magnitudes[layer.weight].size) for layer in self.layers
        }
        self.macs = {layer.weight: layer.macs_per_weight for layer in self.layers}
        if accuracy_fn is None and data.labels is not None:
            labels = data.labels
            accuracy_fn = lambda outputs: accuracy(outputs[0], labels)  # noqa: E731
        self.accuracy_fn = accuracy_fn
        self.objective = objective if accuracy_fn is not None else "behavior"
        self.evaluator = Evaluator(model, data.inputs)
        self.input_moments = (
            layer_input_moments(
                model, data.inputs, self.layers, second=compensation == "least-squares"
            )
            if compensation != "none"
            else {}
        )
        # Pruning one layer to one threshold always gives the same weights; greedy and
        # behaviour searches revisit the same (layer, threshold) pairs, and least squares is
        # worth not solving twice.
        self._layer_changes: OrderedDict[tuple[str, float], dict] = OrderedDict()
        self.dense_outputs = self.evaluator.run()
        self.dense_accuracy = None if accuracy_fn is None else accuracy_fn(self.dense_outputs)
        self.evaluations = 0

    def threshold_for(self, name: str, layer_sparsity: float) -> float:
        """The threshold that prunes ``layer_sparsity`` of layer ``name``."""
        mags = self.sorted_magnitudes[name]
        k = round(layer_sparsity * mags.size)
        return 0.0 if k <= 0 else float(np.nextafter(mags[min(k, mags.size) - 1], np.inf))

    def pruned_count(self, name: str, threshold: float) -> int:
        return int(np.searchsorted(self.sorted_magnitudes[name], threshold, side="left"))

    def changed_params(self, thresholds: Mapping[str, float]) -> dict[str, np.ndarray]:
        """The parameters that pruning with ``thresholds`` changes, compensation included."""
        changed: dict[str, np.ndarray] = {}
        for layer in self.layers:
            threshold = float(thresholds.get(layer.weight, 0.0))
            if threshold <= 0.0:
                continue
            key = (layer.weight, threshold)
            if key not in self._layer_changes:
                (mask,) = layer_masks(self.magnitudes, {layer.weight: threshold}).values()
                self._layer_changes[key] = layer_changes(
                    layer,
                    self.model.params,
                    mask,
                    self.input_moments.get(layer.weight),
                    self.compensation,
                )
                if len(self._layer_changes) > 2 * len(self.layers):
                    self._layer_changes.popitem(last=False)
            self._layer_changes.move_to_end(key)
            changed.update(self._layer_changes[key])
        return changed

    def measure(self, thresholds: Mapping[str, float]) -> dict[str, float]:
        """Run the model pruned with ``thresholds``: loss, metric, accuracy and sparsity."""
        outputs = self._run(self.changed_params(thresholds))
        result = {"metric": METRICS[self.metric](self.dense_outputs[0], outputs[0])}
        if self.accuracy_fn is not None:
            result["accuracy"] = self.accuracy_fn(outputs)
        if self.objective == "accuracy":
            result["loss"] = 100.0 * (self.dense_accuracy - result["accuracy"])
        else:
            result["loss"] = result["metric"]
        result["sparsity"] = self.sparsity(thresholds)
        return result

    def metric_of(self, changed: Mapping[str, np.ndarray]) -> float:
        """The behaviour metric of the model with ``changed`` weights (any masks, not only
        thresholds: grouped block masks)."""
        return METRICS[self.metric](self.dense_outputs[0], self._run(changed)[0])

    def _run(self, changed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.evaluations += 1
        return self.evaluator.run(changed)

    def sparsity(self, thresholds: Mapping[str, float]) -> float:
        pruned = sum(self.pruned_count(name, t) for name, t in thresholds.items())
        return pruned / sum(self.sizes.values())

    def layer_plans(self, thresholds: Mapping[str, float]) -> tuple[LayerPlan, ...]:
        return tuple(
            LayerPlan(
                weight=layer.weight,
                op=layer.op,
                threshold=float(thresholds.get(layer.weight, 0.0)),
                size=self.sizes[layer.weight],
                pruned=self.pruned_count(layer.weight, thresholds.get(layer.weight, 0.0)),
                stats=weight_statistics(self.judged[layer.weight]),
            )
            for layer in self.layers
        )

    def settings(self) -> dict:
        return {
            "metric": self.metric,
            "objective": self.objective,
            "loss_unit": "accuracy points" if self.objective == "accuracy" else self.metric,
            "effective_weights": self.effective,
            "compensation": self.compensation,
            "data": self.data.source,
            "samples": self.data.num_samples,
        }

    def dense_result(self) -> dict:
        return {} if self.dense_accuracy is None else {"dense_accuracy": self.dense_accuracy}


class Progress:
    """A one-line progress bar on stderr (only when enabled)."""

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total, self.enabled, self.done = label, max(total, 1), enabled, 0
        self.start = time.perf_counter()

    def step(self, note: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        if not sys.stderr.isatty():  # logs and pipes: a line at every quarter
            quarter = max(self.total // 4, 1)
            if self.done % quarter == 0 or self.done == self.total:
                elapsed = time.perf_counter() - self.start
                sys.stderr.write(f"{self.label}: {self.done}/{self.total} {elapsed:.1f}s {note}\n")
            return
        width = 30
        filled = int(width * min(self.done, self.total) / self.total)
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} {elapsed:.1f}s {note[:40]:<40}"
        )
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()
