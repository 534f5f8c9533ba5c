"""DenseToGroupedConv: block-diagonal kernels under random channel permutations become grouped
convs equal to ONNX Runtime; other convs are left alone; ShuffleNet and the pytorch-converted
grouped/depthwise convs pass through.

Tolerance: max |ours - reference| <= 1e-5 x max |reference| (each output sums the same nonzero
products; only the summation order can differ).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tvm
from onnx import numpy_helper
from tvm import relax

import tvm_prune
from tvm_prune.cli.main import main
from tvm_prune.frontend import load_onnx
from tvm_prune.pipeline import build_pipeline
from tvm_prune.target import resolve_target
from tvm_prune.testing import models
from tvm_prune.testing.ort import assert_outputs_close, random_inputs, relative_error, run_ort
from tvm_prune.transform import DenseToGroupedConv
from tvm_prune.transform.block_diagonal import find_blocks

REL_TOL = 1e-5


def _bound(path):
    model = load_onnx(path)
    return model, relax.transform.FoldConstant()(model.bound_module())


def _run(mod, x: np.ndarray) -> np.ndarray:
    """``mod`` built with the host preset's pipeline (its schedule rules), run on ``x``."""
    preset = resolve_target("host")
    with preset.target:
        executable = tvm.compile(mod, target=preset.target, relax_pipeline=build_pipeline(preset))
    return relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()


def _conv_groups(mod) -> list[int]:
    groups = []
    relax.analysis.post_order_visit(
        mod["main"],
        lambda e: (
            groups.append(int(e.attrs.groups))
            if isinstance(e, relax.Call) and getattr(e.op, "name", None) == "relax.nn.conv2d"
            else None
        ),
    )
    return groups


def _blocks(sizes: list[tuple[int, int]], seed: int = 0) -> np.ndarray:
    """A 1x1 kernel with one dense block per ``(outs, ins)`` on the diagonal."""
    rng = np.random.default_rng(seed)
    kernel = np.zeros((sum(o for o, _ in sizes), sum(i for _, i in sizes), 1, 1), np.float32)
    row = col = 0
    for outs, ins in sizes:
        kernel[row : row + outs, col : col + ins] = rng.uniform(0.5, 1.0, (outs, ins, 1, 1))
        row, col = row + outs, col + ins
    return kernel


@pytest.mark.parametrize(
    ("sizes", "groups"),
    [
        ([(2, 2)] * 4, 4),
        ([(3, 3), (1, 1), (2, 2), (2, 2)], 2),  # finer components merged into equal blocks
        ([(2, 1)] * 6, 6),  # O != I
        ([(3, 3), (5, 5)], None),  # no equal split
    ],
)
def test_find_blocks_takes_the_most_equal_blocks(sizes, groups):
    kernel = _blocks(sizes)
    structure = find_blocks(kernel)
    if groups is None:
        assert structure is None
        return
    assert structure.groups == groups
    grouped = structure.grouped_kernel(kernel)
    per_out, per_in = kernel.shape[0] // groups, kernel.shape[1] // groups
    # Rebuild the permuted dense kernel from the blocks: it must be the whole kernel.
    rebuilt = np.zeros_like(kernel)
    for b in range(groups):
        outs = structure.out_order[b * per_out : (b + 1) * per_out]
        ins = structure.in_order[b * per_in : (b + 1) * per_in]
        rebuilt[np.ix_(outs, ins)] = grouped[b * per_out : (b + 1) * per_out]
    np.testing.assert_array_equal(rebuilt, kernel)


@pytest.mark.parametrize("producer", [True, False])
def test_permuted_block_diagonal_convs_become_grouped_and_match_ort(tmp_path, producer):
    """stem conv -> BN -> relu -> conv (16<-8, g=4, 3x3) -> relu -> conv (8<-16, g=2, 1x1) ->
    relu -> dense conv, kernels shuffled by random permutations. With the stem, the first
    input order folds into it; without, it stays a take on the model input."""
    first, *_ = models.block_diagonal_kernel(16, 8, 4, 3, seed=1)
    second, *_ = models.block_diagonal_kernel(8, 16, 2, 1, seed=2)
    dense = np.random.default_rng(3).standard_normal((4, 8, 3, 3)).astype(np.float32)
    path = models.save(
        models.conv_chain([first, second, dense], producer=producer), tmp_path / "chain.onnx"
    )
    model, mod = _bound(path)
    rewrite = DenseToGroupedConv()
    rewritten = rewrite(mod)
    grouped = [e for e in rewrite.report if e.get("rewritten")]
    assert [(e["groups"], e["macs_before"] // e["macs_after"]) for e in grouped] == [(4, 4), (2, 2)]
    assert grouped[0]["input_permutation"] == ("folded" if producer else "explicit")
    # Between the two grouped convs one merged take; after the second, folded into the dense.
    assert grouped[0]["output_permutation"] == "merged"
    assert grouped[1]["input_permutation"] == "explicit"
    assert grouped[1]["output_permutation"] == "folded"
    assert sorted(_conv_groups(rewritten)) == ([1] if producer else []) + [1, 2, 4]
    x = np.random.default_rng(0).standard_normal(model.inputs[0].shape).astype(np.float32)
    (reference,) = run_ort(path, {"x": x}).values()
    assert relative_error(_run(rewritten, x), reference) <= REL_TOL
    # Idempotent: nothing left to group or fold.
    tvm.ir.assert_structural_equal(DenseToGroupedConv()(rewritten), rewritten)


def test_conv_not_block_diagonal_is_left_alone(tmp_path):
    """Block-diagonal but for one tiny off-block tap: not exactly zero, so not rewritten."""
    kernel, out_perm, in_perm = models.block_diagonal_kernel(8, 8, 2, 3, seed=4)
    kernel[out_perm[0], in_perm[-1], 1, 1] = 1e-7
    path = models.save(models.conv_chain([kernel], producer=True), tmp_path / "near.onnx")
    _, mod = _bound(path)
    rewrite = DenseToGroupedConv()
    tvm.ir.assert_structural_equal(rewrite(mod), mod)
    assert [e["reason"] for e in rewrite.report] == ["not block-diagonal"] * 2


@pytest.mark.parametrize(
    "case", models.pytorch_converted_cases(contains=("Conv2d_groups", "Conv2d_depthwise"))
)
def test_pytorch_converted_grouped_convs_pass_through(case):
    path, inputs, (expected,) = models.pytorch_converted_case(case)
    _, mod = _bound(path)
    rewrite = DenseToGroupedConv()
    rewritten = rewrite(mod)
    tvm.ir.assert_structural_equal(rewritten, mod)
    assert all(e["reason"].startswith("already grouped") for e in rewrite.report), rewrite.report
    (x,) = inputs.values()
    assert relative_error(_run(rewritten, x), expected) <= REL_TOL


def test_shufflenet_with_dense_block_kernels_regains_its_groups(tmp_path):
    """ShuffleNet (onnx light, random weights) with every 4-group conv stored as a dense
    block-diagonal kernel: the build's rewrite recovers each as groups=4 and the package
    equals ONNX Runtime on the dense model."""
    model = models.randomized_light_model("light_shufflenet")
    dense_convs = _densify_group_convs(model)
    path = models.save(model, tmp_path / "shufflenet_dense.onnx")
    package = tvm_prune.compile(path, target="host", output=tmp_path / "s.tar")
    reports = {t["name"]: t["report"]["rewrites"] for t in package.metadata.transforms}
    grouped = [e for e in reports["DenseToGroupedConv"] if e.get("rewritten")]
    assert len(grouped) == dense_convs == 32
    assert {(e["groups"], e["input_permutation"], e["output_permutation"]) for e in grouped} == {
        (4, "none", "none")
    }
    inputs = random_inputs(package.inputs)
    assert_outputs_close(package.run(inputs), run_ort(path, inputs), rel_tol=REL_TOL)


def _densify_group_convs(model: onnx.ModelProto) -> int:
    """Store every grouped, not depthwise, conv of ``model`` as a dense block-diagonal one."""
    initializers = {init.name: init for init in model.graph.initializer}
    count = 0
    for node in model.graph.node:
        group = next((a for a in node.attribute if a.name == "group"), None)
        if node.op_type != "Conv" or group is None or group.i == 1:
            continue
        kernel = numpy_helper.to_array(initializers[node.input[1]])
        if kernel.shape[1] == 1:
            continue
        out_channels, per_in = kernel.shape[:2]
        per_out = out_channels // group.i
        dense = np.zeros((out_channels, per_in * group.i, *kernel.shape[2:]), np.float32)
        for b in range(group.i):
            rows = slice(b * per_out, (b + 1) * per_out)
            dense[rows, b * per_in : (b + 1) * per_in] = kernel[rows]
        initializers[node.input[1]].CopyFrom(numpy_helper.from_array(dense, node.input[1]))
        group.i = 1
        count += 1
    # The light models list initializers as inputs (IR version 3): their shapes change too.
    for value in model.graph.input:
        if value.name in initializers:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, initializers[value.name].dims, strict=True):
                dim.dim_value = size
    return count


def test_cli_compile_reports_the_grouped_convs(tmp_path, capsys):
    first, *_ = models.block_diagonal_kernel(16, 8, 4, 3, seed=1)
    path = models.save(models.conv_chain([first]), tmp_path / "one.onnx")
    assert main(["compile", str(path), "--target", "host", "-o", str(tmp_path / "o.tar")]) == 0
    lines = capsys.readouterr().err.splitlines()
    (line,) = [line for line in lines if "DenseToGroupedConv:" in line]
    assert line.endswith(
        "DenseToGroupedConv: 1 of 2 conv2d rewritten (MACs 165,888 -> 41,472, "
        "1 channel permutations left)"
    )
