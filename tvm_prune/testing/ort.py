"""ONNX Runtime as the reference, and the error measure every numeric check uses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np


class OrtReference:
    """An ONNX Runtime CPU session for one model, to run many inputs through."""

    def __init__(self, onnx_path: str | Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self._names = [out.name for out in self._session.get_outputs()]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs keyed by output name."""
        return dict(zip(self._names, self._session.run(self._names, dict(inputs)), strict=True))


def run_ort(onnx_path: str | Path, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of ONNX Runtime's CPU provider for one run, keyed by output name."""
    return OrtReference(onnx_path).run(inputs)


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """``max|actual - expected| / max|expected|``: the error relative to the output's scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"shape {actual.shape} != expected {expected.shape}")
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    return float(np.max(np.abs(actual - expected))) / max(scale, np.finfo(np.float32).tiny)


def assert_outputs_close(
    actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], *, rel_tol: float
) -> dict[str, float]:
    """Check every output within ``rel_tol`` (see :func:`relative_error`); return the errors."""
    assert set(actual) == set(expected), f"outputs {sorted(actual)} != {sorted(expected)}"
    errors = {name: relative_error(actual[name], expected[name]) for name in expected}
    bad = {name: err for name, err in errors.items() if not err <= rel_tol}
    assert not bad, f"outputs off by more than {rel_tol} of their scale: {bad}"
    return errors


def random_inputs(specs, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Normal(0, 1) float inputs (integers in [0, 10)) for each :class:`TensorSpec`."""
    rng = np.random.default_rng(seed)
    result = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        if np.issubdtype(dtype, np.floating):
            result[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
        else:
            result[spec.name] = rng.integers(0, 10, spec.shape).astype(dtype)
    return result
