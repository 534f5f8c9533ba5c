"""Masks, bias correction (exact in expectation for the linear part) and plans as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tvm_prune.prune.apply import layer_masks, output_shift
from tvm_prune.prune.engine import patch_means
from tvm_prune.prune.layers import PrunableLayer
from tvm_prune.prune.plan import LayerPlan, PruningPlan


def _conv(x, w, pad):
    n, _, h, width = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, o, h + 2 * pad - kh + 1, width + 2 * pad - kw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = np.einsum("ncij,ocij->no", xp[:, :, i : i + kh, j : j + kw], w)
    return out


def test_conv_output_shift_is_the_mean_change_with_padding():
    rng = np.random.default_rng(0)
    x = rng.random((5, 3, 6, 6)) + 0.5  # positive means: padding zeros matter
    removed = rng.standard_normal((4, 3, 3, 3)) * (rng.random((4, 3, 3, 3)) < 0.5)
    layer = PrunableLayer(
        "w", "conv2d", 0, None, None, None, 36, ((1, 1), (1, 1, 1, 1), (1, 1), (6, 6))
    )
    means = patch_means(x, layer.conv_geometry, (3, 3))
    expected = _conv(x, removed, 1).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(output_shift(layer, removed, means), expected, rtol=1e-10)
    # The per-channel mean alone (no padding awareness) is measurably off here.
    naive = output_shift(layer, removed, x.mean(axis=(0, 2, 3)))
    assert np.max(np.abs(naive - expected)) > 1e-3


def test_matmul_output_shift_both_layouts():
    rng = np.random.default_rng(1)
    x = rng.random((7, 5))
    removed = rng.standard_normal((3, 5))  # Gemm layout [out, in]
    gemm = PrunableLayer("w", "matmul", 0, None, None, None, 1)
    np.testing.assert_allclose(output_shift(gemm, removed, x.mean(0)), (x @ removed.T).mean(0))
    matmul = PrunableLayer("w", "matmul", 1, None, None, None, 1)
    np.testing.assert_allclose(output_shift(matmul, removed.T, x.mean(0)), (x @ removed.T).mean(0))


def test_masks_keep_at_or_above_threshold():
    mags = {"a": np.array([0.1, 0.5, 0.2, 0.9])}
    np.testing.assert_array_equal(layer_masks(mags, {"a": 0.2})["a"], [False, True, True, True])


def test_plan_json_round_trip():
    plan = PruningPlan(
        method="greedy",
        settings={"metric": "kl"},
        layers=(LayerPlan("w", "conv2d", 0.25, 100, 40, {"fit": "laplace"}),),
        steps=({"layer": "w", "predicted_loss": 0.1, "measured_loss": 0.12},),
        result={"loss": 0.12},
    )
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["sparsity"] == pytest.approx(0.4)
    assert PruningPlan.from_dict(data) == plan
    assert "40.0%" in plan.table()
