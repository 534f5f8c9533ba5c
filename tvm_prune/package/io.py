"""Input and output arrays for running a package: ``.npz`` files and generated inputs."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import RunError, TvmPruneError, first_line, not_a_file
from ..model import TensorSpec


def load_npz(path: str | Path, error: type[TvmPruneError] = RunError) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, keyed by name; ``error`` for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise error(not_a_file(path))
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise error(f"{path}: not an .npz file (a single .npy array)")
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        # numpy takes anything that is neither a zip nor an .npy header for a pickle.
        reason = "not a zip archive" if "pickled" in str(exc) else first_line(exc)
        raise error(f"{path}: not a readable .npz file ({reason})") from exc


def fill_inputs(
    specs: tuple[TensorSpec, ...],
    given: Mapping[str, np.ndarray],
    fill_mode: str,
    *,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``given`` plus a generated array for every input it lacks.

    ``random`` draws floats uniformly from [0, 1) and integers from [0, 10), from a fixed seed so
    repeated runs see the same data.
    """
    rng = np.random.default_rng(seed)
    inputs = dict(given)
    for spec in specs:
        if spec.name in inputs:
            continue
        dtype = np.dtype(spec.dtype)
        if fill_mode == "zeros":
            inputs[spec.name] = np.zeros(spec.shape, dtype)
        elif fill_mode == "ones":
            inputs[spec.name] = np.ones(spec.shape, dtype)
        elif np.issubdtype(dtype, np.floating):
            inputs[spec.name] = rng.random(spec.shape).astype(dtype)
        elif dtype == np.bool_:
            inputs[spec.name] = rng.random(spec.shape) < 0.5
        else:
            inputs[spec.name] = rng.integers(0, 10, spec.shape).astype(dtype)
    return inputs
