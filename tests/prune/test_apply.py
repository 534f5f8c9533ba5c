"""Masks, compensation (bias: exact in expectation; least squares: the numpy lstsq solution)
and plans as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tvm_prune.prune.apply import DAMPING, layer_changes, layer_masks, output_shift
from tvm_prune.prune.engine import InputMoments, patch_means, patches
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
    # Both sides in float64, the same sums in another order.
    np.testing.assert_allclose(output_shift(layer, removed, means), expected, rtol=1e-10)
    # The per-channel mean alone (no padding awareness) is measurably off here.
    naive = output_shift(layer, removed, x.mean(axis=(0, 2, 3)))
    assert np.max(np.abs(naive - expected)) > 1e-3


def test_patches_are_im2col_in_weight_order():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    geometry = ((1, 1), (1, 1, 1, 1), (1, 1), (5, 5))
    rows = patches(x, geometry, (3, 3))
    expected = _conv(x, w, 1).transpose(0, 2, 3, 1).reshape(-1, 4)
    # Both sides in float64, the same sums in another order.
    np.testing.assert_allclose(rows @ w.reshape(4, -1).T, expected, rtol=1e-10, atol=1e-12)


def _second_moment(rows):
    rows = np.concatenate([rows, np.ones((len(rows), 1))], axis=1)
    return rows.T @ rows / len(rows)


def test_least_squares_is_the_ridge_solution_and_beats_bias_correction():
    rng = np.random.default_rng(3)
    x = rng.random((6, 4, 6, 6)) + rng.standard_normal((6, 4, 1, 1))  # correlated channels
    weight = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    geometry = ((1, 1), (1, 1, 1, 1), (1, 1), (6, 6))
    layer = PrunableLayer("w", "conv2d", 0, None, "b", None, 36, geometry)
    params = {"w": weight, "b": np.zeros(5, np.float32)}
    mask = np.abs(weight) >= np.quantile(np.abs(weight), 0.6)
    rows = patches(x, geometry, (3, 3))
    moments = InputMoments(patch_means(x, geometry, (3, 3)), _second_moment(rows))

    solved = layer_changes(layer, params, mask, moments, "least-squares")
    assert np.all(solved["w"][~mask] == 0)
    # Reference: per output channel, numpy lstsq on [kept patch columns, 1] with ridge rows.
    dense_out = rows @ weight.reshape(5, -1).T.astype(np.float64)
    lam = DAMPING * np.mean(np.sum(rows**2, axis=0) / len(rows))
    for o in range(5):
        kept = np.flatnonzero(mask.reshape(5, -1)[o])
        design = np.concatenate([rows[:, kept], np.ones((len(rows), 1))], axis=1) / np.sqrt(
            len(rows)
        )
        ridge = np.zeros((len(kept), len(kept) + 1))
        ridge[:, : len(kept)] = np.sqrt(lam) * np.eye(len(kept))
        original = weight.reshape(5, -1)[o, kept].astype(np.float64)
        target = np.concatenate([dense_out[:, o] / np.sqrt(len(rows)), np.sqrt(lam) * original])
        z = np.linalg.lstsq(np.concatenate([design, ridge]), target, rcond=None)[0]
        # The solver works in float32 moments; lstsq solves the same system in float64.
        np.testing.assert_allclose(solved["w"].reshape(5, -1)[o, kept], z[:-1], rtol=1e-4)
        np.testing.assert_allclose(solved["b"][o], z[-1], rtol=1e-4, atol=1e-5)

    def output_error(changes):
        out = rows @ changes["w"].reshape(5, -1).T.astype(np.float64) + changes["b"]
        return float(np.mean((out - dense_out) ** 2))

    # Nothing pruned: the weights stay as they are (the damping pulls toward them).
    unchanged = layer_changes(layer, params, np.ones_like(mask), moments, "least-squares")
    # The same float32 solve: nothing pruned gives the weights back to its precision.
    np.testing.assert_allclose(unchanged["w"], weight, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(unchanged["b"], 0, atol=1e-5)

    corrected = layer_changes(layer, params, mask, moments, "bias")
    masked = layer_changes(layer, params, mask, moments, "none")
    masked["b"] = params["b"]
    assert output_error(solved) < 0.7 * output_error(corrected) < output_error(masked)


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
