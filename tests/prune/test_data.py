"""Calibration ``.npz`` files: the sample layouts accepted, and one-line refusals of the rest."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tvm_prune.model import TensorSpec
from tvm_prune.prune.data import CalibrationDataError, load_calibration

MODEL = SimpleNamespace(inputs=(TensorSpec("input", (1, 1, 8, 8), "float32"),))


def _npz(tmp_path, **arrays):
    path = tmp_path / "calib.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "shape", [(5, 1, 1, 8, 8), (5, 1, 8, 8), (1, 1, 8, 8)], ids=["stacked", "batch", "one"]
)
def test_sample_layouts(tmp_path, shape):
    data = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    calib = load_calibration(_npz(tmp_path, input=data, label=np.arange(shape[0])), MODEL)
    assert calib.inputs["input"].shape == (shape[0], 1, 1, 8, 8)
    assert calib.inputs["input"].dtype == np.float32
    np.testing.assert_array_equal(calib.inputs["input"].ravel(), data.ravel())
    assert calib.num_samples == shape[0]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"input": np.zeros((5, 8, 8, 1), np.float32)}, "of shape [5, 8, 8, 1] is not a stack"),
        ({"input": np.zeros((1, 8, 8), np.float32)}, "of shape [1, 8, 8] is not a stack"),
        ({"input": np.zeros((0, 1, 8, 8), np.float32)}, "holds no sample"),
        ({"input": np.zeros((5, 1, 8, 8), np.uint8)}, "is uint8, the input is float32"),
        (
            {"input": np.zeros((5, 1, 8, 8), np.float32), "label": np.zeros(4)},
            "4 labels for 5 samples",
        ),
        ({"image": np.zeros((5, 1, 8, 8), np.float32)}, "no array for input 'input'"),
    ],
    ids=["nhwc", "rank", "empty", "dtype", "labels", "name"],
)
def test_refusals(tmp_path, arrays, message):
    with pytest.raises(CalibrationDataError, match=r"calib\.npz: ") as caught:
        load_calibration(_npz(tmp_path, **arrays), MODEL)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_an_npz(tmp_path):
    path = tmp_path / "calib.npz"
    path.write_text("input,label\n1,2\n")
    with pytest.raises(CalibrationDataError, match="calib.npz: not a"):
        load_calibration(path, MODEL)
