"""Group-structured pruning: the block assignment keeps the most |w| (checked by enumeration on
small kernels, exact recovery of shuffled block-diagonal ones), and a plan on the digits CNN
compiles into grouped convs that equal ONNX Runtime on the exported pruned model.

Tolerance: max |package - ort| <= 1e-5 x max |ort| (the grouped convs sum the same nonzero
products as the masked dense ones).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import tvm_prune
from tvm_prune.prune import grouping
from tvm_prune.prune.data import load_calibration
from tvm_prune.prune.onnx_export import export_onnx
from tvm_prune.prune.session import PruneSession
from tvm_prune.testing import models
from tvm_prune.testing.ort import assert_outputs_close, run_ort
from tvm_prune.transform.block_diagonal import find_blocks

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def test_shuffled_block_diagonal_kernel_is_recovered_whole():
    kernel, _, _ = models.block_diagonal_kernel(32, 16, 4, 3, seed=5)
    assignment = grouping.block_assignment(kernel, 4)
    assert assignment.kept == pytest.approx(1.0)
    assert np.array_equal(kernel * assignment.mask(kernel.shape), kernel)


@pytest.mark.parametrize("seed", range(3))
def test_block_assignment_is_the_best_balanced_one_on_small_kernels(seed):
    """6 outputs x 6 inputs, 2 blocks: every balanced assignment enumerated."""
    kernel = np.random.default_rng(seed).standard_normal((6, 6, 1, 1)) ** 3
    score = np.abs(kernel[:, :, 0, 0])

    def splits():
        for first in itertools.combinations(range(6), 3):
            blocks = np.ones(6, dtype=int)
            blocks[list(first)] = 0
            yield blocks

    best = max(
        score[o[:, None] == i[None, :]].sum() for o, i in itertools.product(splits(), splits())
    )
    assignment = grouping.block_assignment(kernel, 2)
    assert assignment.kept * score.sum() == pytest.approx(best)
    # The masked kernel is what DenseToGroupedConv detects.
    assert find_blocks(kernel * assignment.mask(kernel.shape)).groups == 2


def test_digits_group_plan_compiles_to_grouped_convs_equal_to_ort(tmp_path):
    model = tvm_prune.load_onnx(DIGITS / "digits_cnn.onnx")
    session = PruneSession(
        model, load_calibration(DIGITS / "digits_calib.npz", model).subset(16), compensation="bias"
    )
    plan = grouping.plan_groups(session, tolerance=0.02)
    assert plan.groups and plan.metric_value <= 0.02
    assert all(t["metric"] > 0 for t in plan.trials)  # grouping a trained layer costs something
    grouped = grouping.apply_group_plan(model, session, plan)
    package = tvm_prune.compile(grouped, target="host", output=tmp_path / "g.tar")
    reports = {t["name"]: t["report"] for t in package.metadata.transforms}
    assert reports["PruneWeights"]["groups"] == plan.groups
    rewrites = [e for e in reports["DenseToGroupedConv"]["rewrites"] if e.get("rewritten")]
    shapes = {name: list(model.params[name].shape) for name in plan.groups}
    assert sorted((e["shape"], e["groups"]) for e in rewrites) == sorted(
        (shapes[name], g) for name, g in plan.groups.items()
    )
    path = export_onnx(grouped, tmp_path / "grouped.onnx")
    with np.load(DIGITS / "digits_test.npz") as data:
        digits = data["input"][:1]
    assert_outputs_close(
        package.run({"input": digits}), run_ort(path, {"input": digits}), rel_tol=1e-5
    )
