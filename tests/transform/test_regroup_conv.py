"""RegroupConv on every preset that declares ``conv_groups``: each conv left is one the preset
runs, and the result equals ONNX Runtime (built for
the host: the rewrite is target independent, only the choice is not).

Tolerance: max |ours - reference| <= 1e-5 x max |reference| (same nonzero products per output).
"""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_prune.frontend import load_onnx
from tvm_prune.target.presets import list_presets, load_preset
from tvm_prune.testing import models, networks
from tvm_prune.testing.ort import relative_error, run_ort
from tvm_prune.transform import RegroupConv, default_rewrites
from tvm_prune.transform.regroup_conv import form_costs, regroup_kernel

from ..conftest import relax_op_names
from .test_grouped_conv import _run

REL_TOL = 1e-5
PRESETS = [name for name in list_presets() if load_preset(name).conv_groups is not None]


def _convs(mod) -> list[tuple[int, int]]:
    """``(groups, input channels)`` of every conv2d in ``main``."""
    found = []
    relax.analysis.post_order_visit(
        mod["main"],
        lambda e: (
            found.append((int(e.attrs.groups), int(e.args[0].ty.shape[1])))
            if isinstance(e, relax.Call) and getattr(e.op, "name", None) == "relax.nn.conv2d"
            else None
        ),
    )
    return found


def _cases(tmp_path):
    """(name, onnx path, input) for: 2 groups of 2 channels, 8 groups of 2 channels (1x1 and
    3x3), depthwise."""
    cases = []
    for case in ("test_Conv2d_groups", "test_Conv2d_depthwise"):
        path, inputs, _ = models.pytorch_converted_case(case)
        cases.append((case, path, next(iter(inputs.values()))))
    for weight in ((16, 2, 1, 1), (32, 2, 3, 3)):
        path = models.save(
            networks.single_op("Conv", (1, 16, 10, 10), weight=weight, group=8, pads=[1] * 4),
            tmp_path / f"g8_{weight[0]}.onnx",
        )
        x = np.random.default_rng(0).standard_normal((1, 16, 10, 10)).astype(np.float32)
        cases.append((f"groups8_{weight[0]}", path, x))
    return cases


@pytest.mark.parametrize("preset_name", PRESETS)
def test_regrouped_convs_run_on_the_preset_and_match_ort(tmp_path, preset_name):
    support = load_preset(preset_name).conv_groups
    assert support is not None
    assert any(isinstance(p, RegroupConv) for p in default_rewrites(load_preset(preset_name)))
    for name, path, x in _cases(tmp_path):
        model = load_onnx(path)
        mod = relax.transform.FoldConstant()(model.bound_module())
        regroup = RegroupConv(support)
        rewritten = regroup(mod)
        assert all(support.runs(g, c) for g, c in _convs(rewritten)), (name, _convs(rewritten))
        (entry,) = regroup.report
        if not entry.get("rewritten"):
            tvm.ir.assert_structural_equal(rewritten, mod)
        (reference,) = run_ort(path, {model.inputs[0].name: x}).values()
        assert relative_error(_run(rewritten, x), reference) <= REL_TOL, name


@pytest.mark.parametrize(
    ("preset_name", "kernel", "form"),
    [
        # 3x3: the 8x MACs of dense or 2x of 4 groups cost more than split's two copies.
        ("hexagon-v68", (32, 2, 3, 3), "split"),
        ("mali-g76", (32, 2, 3, 3), "split"),
        # 1x1: few MACs per element moved, so the copies decide: dense / 4 groups of 4.
        ("hexagon-v68", (16, 2, 1, 1), "regroup 1"),
        ("mali-g76", (16, 2, 1, 1), "regroup 4"),
    ],
)
def test_cost_model_choices(preset_name, kernel, form):
    support = load_preset(preset_name).conv_groups
    shape = [1, 16, 10, 10]
    costs = form_costs(support, shape, [1, kernel[0], 10, 10], kernel, 8)
    assert min(costs, key=costs.get) == form
    assert all(support.runs(int(f.split()[-1]), 16) for f in costs if f != "split")


def test_presets_limits_and_coarser_kernel():
    hexagon, mali = (load_preset(name).conv_groups for name in ("hexagon-v68", "mali-g76"))
    assert not hexagon.runs(8, 16) and hexagon.runs(16, 16) and hexagon.runs(1, 16)
    assert not mali.runs(8, 16) and mali.runs(4, 16) and mali.runs(16, 16)
    kernel = np.arange(16 * 2 * 9, dtype=np.float32).reshape(16, 2, 3, 3)
    coarse = regroup_kernel(kernel, 8, 4)
    assert coarse.shape == (16, 4, 3, 3)
    np.testing.assert_array_equal(coarse[0, :2], kernel[0])  # group 0 -> first half
    np.testing.assert_array_equal(coarse[2, 2:], kernel[2])  # group 1 -> second half
    assert not coarse[0, 2:].any() and not coarse[2, :2].any()


@pytest.mark.parametrize(
    ("kernel", "out_channels", "form"), [(3, 32, "split"), (1, 16, "regroup 1")]
)
def test_input_after_a_channel_shuffle_is_read_before_it(tmp_path, kernel, out_channels, form):
    """A grouped conv reading ShuffleNet's channel shuffle, on Hexagon: the split gathers each
    group's channels from before the shuffle, the dense form scatters its kernel columns; the
    shuffle's reshapes are gone either way."""
    path = models.save(
        models.shuffled_group_convs(kernel=kernel, out_channels=out_channels),
        tmp_path / "shuffle.onnx",
    )
    model = load_onnx(path)
    mod = relax.transform.FoldConstant()(model.bound_module())
    regroup = RegroupConv(load_preset("hexagon-v68").conv_groups)
    rewritten = regroup(mod)
    second = regroup.report[-1]
    assert (second["form"], second["input"]) == (form, "shuffle folded")
    assert "relax.permute_dims" not in relax_op_names(rewritten)
    x = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float32)
    (reference,) = run_ort(path, {"x": x}).values()
    assert relative_error(_run(rewritten, x), reference) <= REL_TOL
