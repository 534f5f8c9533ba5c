"""Calibration / validation data: a user ``.npz``, or generated inputs with a warning."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TvmPruneError
from ..model import Model
from ..package.io import load_npz

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


def load_calibration(path: str | Path, model: Model) -> CalibrationData:
    """Read ``path``: one array per model input, optional ``label(s)``, one per sample.

    An input's array is one sample (the input's shape), samples stacked on a new leading axis
    (``[N, *shape]``), or, for a batch-1 input, samples along the batch axis (``[N, *shape[1:]]``).
    Its dtype is cast within its kind (float64 data for a float32 input) and refused across kinds
    (uint8 pixels for a float input would skip the model's normalisation).
    """
    path = Path(path)
    arrays = load_npz(path, CalibrationDataError)
    inputs = {}
    for spec in model.inputs:
        if spec.name not in arrays:
            raise CalibrationDataError(
                f"{path}: no array for input '{spec.name}' (arrays: {', '.join(arrays)})"
            )
        array = arrays[spec.name]
        shape = tuple(spec.shape)
        if array.dtype.kind != np.dtype(spec.dtype).kind:
            raise CalibrationDataError(
                f"{path}: array '{spec.name}' is {array.dtype}, the input is {spec.dtype}"
            )
        if array.shape == shape:
            array = array[None]
        elif array.shape[1:] != shape and not (shape[:1] == (1,) and array.shape[1:] == shape[1:]):
            raise CalibrationDataError(
                f"{path}: array '{spec.name}' of shape {list(array.shape)} is not a stack of "
                f"inputs of shape {list(shape)}"
            )
        if len(array) == 0:
            raise CalibrationDataError(f"{path}: array '{spec.name}' holds no sample")
        inputs[spec.name] = array.astype(spec.dtype).reshape(-1, *shape)
    counts = {len(array) for array in inputs.values()}
    if len(counts) > 1:
        raise CalibrationDataError(f"{path}: the inputs hold different numbers of samples")
    labels = next((arrays[k].reshape(-1) for k in LABEL_KEYS if k in arrays), None)
    if labels is not None and len(labels) != min(counts):
        raise CalibrationDataError(f"{path}: {len(labels)} labels for {min(counts)} samples")
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
