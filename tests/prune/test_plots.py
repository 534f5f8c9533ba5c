"""--plot: PNGs written from a plan's curves and steps (skipped without matplotlib)."""

from __future__ import annotations

import pytest

from tvm_prune.prune.plan import LayerPlan, PruningPlan
from tvm_prune.prune.plots import write_plots


def test_plots_written(tmp_path):
    pytest.importorskip("matplotlib")
    plan = PruningPlan(
        method="greedy",
        settings={"levels": [0.0, 0.5, 0.9], "loss_unit": "kl", "tolerance": 0.1},
        layers=(LayerPlan("w", "conv2d", 0.1, 10, 5),),
        steps=({"layer": "w", "sparsity": 0.5, "predicted_loss": 0.01, "measured_loss": 0.02},),
        result={"curves": {"w": [0.0, 0.01, 0.3]}},
    )
    paths = write_plots(plan, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["greedy_loss_vs_sparsity.png", "sensitivity.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
