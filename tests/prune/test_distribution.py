"""Thresholds follow each layer's weight distribution (synthetic weights of known law)."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_prune.prune.distribution import (
    distribution_thresholds,
    global_threshold,
    weight_statistics,
)


def test_fit_recognises_laplace_and_normal_and_their_scale():
    rng = np.random.default_rng(0)
    laplace = weight_statistics(rng.laplace(0.0, 0.05, 20000))
    normal = weight_statistics(rng.normal(0.0, 0.2, 20000))
    assert laplace["fit"] == "laplace"
    # Bounds about 5 standard errors at 20000 samples (0.05 / sqrt(20000) = 3.5e-4).
    assert abs(laplace["fit_scale"] - 0.05) < 0.002
    assert normal["fit"] == "normal"
    assert abs(normal["fit_scale"] - 0.2) < 0.005
    # |w| median of a Laplace(b) is b ln 2.
    assert abs(laplace["abs_percentiles"]["50"] - 0.05 * np.log(2)) < 0.002


def test_per_layer_thresholds_scale_with_the_layer_distribution():
    """Two Laplace layers, scales 0.01 and 0.1: one global cut would prune the narrow layer
    nearly entirely; distribution thresholds prune both to the target fraction."""
    rng = np.random.default_rng(1)
    narrow = np.abs(rng.laplace(0.0, 0.01, 5000))
    wide = np.abs(rng.laplace(0.0, 0.1, 5000))
    thresholds, cut = distribution_thresholds(
        {"narrow": narrow, "wide": wide}, {"narrow": 0.01, "wide": 0.1}, 0.6
    )
    assert abs(thresholds["wide"] / thresholds["narrow"] - 10.0) < 1e-9
    # Laplace: P(|w| < c b) = 1 - exp(-c), so c = ln(1 / 0.4) for 60 %.
    assert abs(cut - np.log(1 / 0.4)) < 0.05
    for name, mags in (("narrow", narrow), ("wide", wide)):
        assert abs(np.mean(mags < thresholds[name]) - 0.6) < 0.03

    single = global_threshold([narrow, wide], 0.6)
    assert np.mean(narrow < single) > 0.9  # the narrow layer is nearly wiped out
    assert np.mean(wide < single) < 0.3
    assert abs(np.mean(np.concatenate([narrow, wide]) < single) - 0.6) < 1e-3


def test_lamp_scores_and_thresholds():
    from tvm_prune.prune.distribution import lamp_scores, lamp_thresholds

    mags, scores = lamp_scores(np.array([3.0, -1.0, 2.0]))
    np.testing.assert_allclose(mags, [1, 2, 3])
    np.testing.assert_allclose(scores, [1 / 14, 4 / 13, 1.0])

    rng = np.random.default_rng(2)
    small = np.abs(rng.laplace(0.0, 0.001, 300))  # a tiny-scale layer a global cut would wipe out
    large = np.abs(rng.normal(0.0, 1.0, 3000))
    thresholds = lamp_thresholds({"small": small, "large": large}, 0.7)
    pruned = {
        "small": np.sum(small < thresholds["small"]),
        "large": np.sum(large < thresholds["large"]),
    }
    assert abs(pruned["small"] + pruned["large"] - 0.7 * 3300) <= 1
    assert pruned["small"] < small.size  # the largest weight of every layer survives
    # Rescaling a layer rescales its threshold and nothing else.
    scaled = lamp_thresholds({"small": small * 1000, "large": large}, 0.7)
    assert scaled["small"] == pytest.approx(thresholds["small"] * 1000)
    assert scaled["large"] == thresholds["large"]
