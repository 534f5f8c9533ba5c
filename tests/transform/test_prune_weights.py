"""PruneWeights: structure (fires, each "Only when", idempotence) and numbers against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from tvm_prune.transform import PruneWeights


@I.ir_module
class Before:
    @R.function
    def main(
        x: R.Tensor((1, 4), "float32"),
        w: R.Tensor((4, 3), "float32"),
        b: R.Tensor((3,), "float32"),
    ) -> R.Tensor((1, 3), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            y = R.matmul(x, w)
            z = R.add(y, b)
            R.output(z)
        return z


MASK = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 1, 0]], dtype=bool)


def test_fires_masking_the_weight_before_its_use():
    after = PruneWeights({"w": MASK})(Before)
    main = after["main"]
    assert [p.name for p in main.params] == ["x", "w", "b"]
    first = main.body.blocks[0].bindings[0]
    assert first.value.op.name == "relax.multiply"
    assert first.value.args[0].same_as(main.params[1])
    np.testing.assert_array_equal(first.value.args[1].value.numpy(), MASK.astype("float32"))
    matmul = main.body.blocks[0].bindings[1].value
    assert matmul.args[1].same_as(first.var)

    x = np.ones((1, 4), "float32")
    w = np.arange(12, dtype="float32").reshape(4, 3)
    b = np.zeros(3, "float32")
    vm = relax.VirtualMachine(tvm.compile(after, "llvm"), tvm.cpu())
    out = vm["main"](*(tvm.runtime.tensor(a) for a in (x, w, b))).numpy()
    np.testing.assert_allclose(out, x @ (w * MASK))


@pytest.mark.parametrize(
    "masks",
    [
        {},  # nothing named
        {"b": np.ones(3, bool)},  # all-ones mask prunes nothing
        {"w": np.ones((3, 4), bool)},  # shape does not match the parameter
        {"v": MASK},  # not a parameter of main
    ],
)
def test_no_change(masks):
    tvm.ir.assert_structural_equal(PruneWeights(masks)(Before), Before)


def test_idempotent():
    once = PruneWeights({"w": MASK})(Before)
    tvm.ir.assert_structural_equal(PruneWeights({"w": MASK})(once), once)
