"""Calibration / validation data: a user ``.npz``, or generated inputs with a warning."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TvmPruneError
from ..model import Model

logger = logging.getLogger(__name__)

LABEL_KEYS = ("label", "labels")


class CalibrationDataError(TvmPruneError):
    """Calibration data that does not match the model."""


@dataclass(frozen=True)
class CalibrationData:
    """Inputs stacked along a leading sample axis (keyed by input name), optional labels."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str

    @property
    def num_samples(self) -> int:
        return min(len(v) for v in self.inputs.values())

    def subset(self, count: int) -> CalibrationData:
        labels = None if self.labels is None else self.labels[:count]
        return CalibrationData({k: v[:count] for k, v in self.inputs.items()}, labels, self.source)


def load_npz(path: str | Path, model: Model) -> CalibrationData:
    """Read ``path``: one array per model input (``N`` samples), optional ``label(s)``."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationDataError(f"{path}: no such file")
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    inputs = {}
    for spec in model.inputs:
        if spec.name not in arrays:
            raise CalibrationDataError(
                f"{path}: no array for input '{spec.name}' (arrays: {', '.join(arrays)})"
            )
        array = arrays[spec.name].astype(spec.dtype)
        per_sample = int(np.prod(spec.shape))
        if array.size % per_sample:
            raise CalibrationDataError(
                f"{path}: array '{spec.name}' of shape {list(array.shape)} is not a stack of "
                f"inputs of shape {list(spec.shape)}"
            )
        inputs[spec.name] = array.reshape(-1, *spec.shape)
    labels = next((arrays[k].reshape(-1) for k in LABEL_KEYS if k in arrays), None)
    return CalibrationData(inputs, labels, str(path))


def generated(model: Model, count: int = 16, *, seed: int = 0) -> CalibrationData:
    """Normal(0, 1) inputs; behaviour on random data is only a proxy for real data."""
    logger.warning(
        "no calibration data given: using %d random inputs; behaviour on random data is only "
        "a proxy for behaviour on real inputs (give --calib data.npz)",
        count,
    )
    rng = np.random.default_rng(seed)
    inputs = {
        spec.name: rng.standard_normal((count, *spec.shape)).astype(spec.dtype)
        for spec in model.inputs
    }
    return CalibrationData(inputs, None, f"generated (normal, seed {seed})")
