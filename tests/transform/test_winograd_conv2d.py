"""WinogradConv2d: 3x3 stride-1 convs (bias + ReLU after them) compiled with the host schedule
rules equal ONNX Runtime within the Winograd tolerance; other convs are left alone with a
reason; the presets that declare ``winograd`` run it; the aarch64 build schedules every kernel.

Tolerance: max |ours - ort| <= 2e-5 x max |ort|. Winograd is not exact: the transforms scale
inputs by powers of the interpolation points (up to 2^4 in F(4x4)) before the sums, so
rounding grows with them. Measured here (normal(0, 1) inputs, 8-16 channels): <= 1.3e-6 for
F(4x4), <= 4e-7 for F(2x2); on ResNet-18's layers (64-256 channels) <= 3.2e-6 for F(4x4)
(``bench/winograd.py``); a direct float32 conv is ~1e-7.
"""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_prune.errors import TargetError
from tvm_prune.frontend import load_onnx
from tvm_prune.pipeline import build_pipeline
from tvm_prune.target import resolve_target
from tvm_prune.target.presets import WinogradPolicy, load_preset
from tvm_prune.testing import models, networks
from tvm_prune.testing.ort import relative_error, run_ort
from tvm_prune.transform import WinogradConv2d, default_rewrites
from tvm_prune.transform.winograd_conv2d import winograd_matrices

from ..conftest import relax_op_names

REL_TOL = 2e-5


def _rewritten(tmp_path, x_shape, weight, rewrite=None, **attrs):
    path = models.save(
        networks.single_op("Conv", x_shape, weight=weight, **attrs), tmp_path / "c.onnx"
    )
    model = load_onnx(path)
    rewrite = rewrite or WinogradConv2d()
    return path, model, rewrite(model.bound_module()), rewrite.report


def _build(mod, preset_name: str):
    preset = resolve_target(preset_name)
    report: dict = {}
    with preset.target:
        executable = tvm.compile(
            mod, target=preset.target, relax_pipeline=build_pipeline(preset, report=report)
        )
    return executable, report


@pytest.mark.parametrize(
    ("x_shape", "weight", "pads", "tile"),
    [
        ((1, 16, 12, 8), (16, 16, 3, 3), [1] * 4, 4),  # same padding, tile rows < a vector
        ((2, 8, 10, 14), (12, 8, 3, 3), [0] * 4, 4),  # no padding (8x12 out), batch 2
        ((1, 8, 10, 6), (8, 8, 3, 3), [1] * 4, 2),  # 10x6: 4 does not divide, F(2x2)
        ((1, 8, 9, 12), (16, 8, 3, 3), [0, 1, 1, 1], 4),  # asymmetric padding, odd input
    ],
)
def test_winograd_matches_ort(tmp_path, x_shape, weight, pads, tile):
    path, _, rewritten, report = _rewritten(tmp_path, x_shape, weight, pads=pads)
    assert report[0]["rewritten"] is True and report[0]["tile"] == tile, report
    assert "relax.nn.conv2d" not in relax_op_names(rewritten)
    executable, schedule = _build(rewritten, "host")
    assert schedule["scheduled"].get("WinogradTransform") == 2, schedule
    assert schedule["fallback"] == 0, schedule
    x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
    ours = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    (reference,) = run_ort(path, {"x": x}).values()
    assert relative_error(ours, reference) <= REL_TOL


@pytest.mark.parametrize(
    ("x_shape", "tiles", "tile"),
    [
        ((1, 8, 14, 14), (4,), 4),  # 14x14 computed as 16x16 (4 x 4 tiles), cropped
        ((2, 8, 18, 13), (4, 2), 4),  # neither side divides, batch 2: 5 x 4 tiles each
        ((1, 8, 13, 10), (4, 2), 2),  # F(4x4) has 12 tiles, too few: F(2x2), 7 x 5 tiles
        ((1, 8, 14, 14), (4, 2), 4),  # cropped F(4x4) before a dividing F(2x2)
        ((1, 8, 7, 7), (4, 2), 2),  # 4 x 4 tiles of F(2x2), cropped (the host's 512@7)
    ],
)
def test_cropped_winograd_matches_ort(tmp_path, x_shape, tiles, tile):
    rewrite = WinogradConv2d(tiles=tiles)
    path, _, rewritten, report = _rewritten(tmp_path, x_shape, (16, 8, 3, 3), rewrite, pads=[1] * 4)
    assert report[0]["rewritten"] is True and report[0]["tile"] == tile, report
    executable, _ = _build(rewritten, "host")
    x = np.random.default_rng(2).standard_normal(x_shape).astype(np.float32)
    ours = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    (reference,) = run_ort(path, {"x": x}).values()
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) <= REL_TOL


def test_too_few_tiles_to_crop_is_left_alone(tmp_path):
    rewrite = WinogradConv2d(tiles=(4,))
    _, model, rewritten, report = _rewritten(
        tmp_path, (1, 8, 7, 7), (8, 8, 3, 3), rewrite, pads=[1] * 4
    )
    tvm.ir.assert_structural_equal(rewritten, model.bound_module())
    assert "fewer than 16 tiles" in report[0]["reason"], report


@pytest.mark.parametrize(
    ("size", "tile", "tiles"), [(28, 4, 64), (14, 2, 64), (56, 4, 224), (14, 4, 16)]
)
def test_gemm_tiles_are_padded_to_whole_register_tiles(tmp_path, size, tile, tiles):
    """28x28 under F(4x4) has 7 x 8 tiles (one AVX2 vector per 7 would leave the GEMM with 8
    broadcasts per vector load): rows of zero tiles pad it to 64; 56x56 has 14 x 16 = 224;
    14x14 cropped under F(4x4) 4 x 4 = 16 (not 4 x 8: rows under half a block stay narrow)."""
    rewrite = WinogradConv2d(tiles=(tile,))
    _, _, rewritten, _ = _rewritten(
        tmp_path, (1, 8, size, size), (8, 8, 3, 3), rewrite, pads=[1] * 4
    )
    (shape,) = [
        [int(d) for d in binding.value.ty.shape]
        for block in rewritten["main"].body.blocks
        for binding in block.bindings
        if isinstance(binding.value, relax.Call)
        and binding.value.op.name == "relax.call_tir"
        and binding.value.args[0].name_hint == "winograd_gemm"
    ]
    assert shape == [(tile + 2) ** 2, 8, tiles]


def test_transform_matrices_reproduce_a_correlation():
    """A^T [(G g G^T) * (B^T d B)] A is the valid 3x3 correlation of d with g (float64)."""
    rng = np.random.default_rng(0)
    for tile in (2, 4):
        a, b, g = winograd_matrices(tile)
        d = rng.standard_normal((tile + 2, tile + 2))
        kernel = rng.standard_normal((3, 3))
        direct = np.array(
            [[np.sum(d[y : y + 3, x : x + 3] * kernel) for x in range(tile)] for y in range(tile)]
        )
        product = a.T @ ((g @ kernel @ g.T) * (b.T @ d @ b)) @ a
        np.testing.assert_allclose(product, direct, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("weight", "attrs", "reason"),
    [
        ((8, 8, 3, 3), {"strides": [2, 2], "pads": [1] * 4}, "strides [2, 2]"),
        ((8, 8, 3, 3), {"dilations": [2, 2], "pads": [2] * 4}, "dilation [2, 2]"),
        ((8, 4, 3, 3), {"group": 2, "pads": [1] * 4}, "groups 2"),
        ((8, 8, 1, 1), {}, "kernel [1, 1]"),
    ],
)
def test_other_convs_are_left_alone(tmp_path, weight, attrs, reason):
    _, model, rewritten, report = _rewritten(tmp_path, (1, 8, 8, 8), weight, **attrs)
    tvm.ir.assert_structural_equal(rewritten, model.bound_module())
    assert report[0]["rewritten"] is False and reason in report[0]["reason"], report


def test_thin_convs_stay_direct(tmp_path):
    rewrite = WinogradConv2d(min_channels=16)
    _, model, rewritten, report = _rewritten(
        tmp_path, (1, 8, 8, 8), (32, 8, 3, 3), rewrite, pads=[1] * 4
    )
    tvm.ir.assert_structural_equal(rewritten, model.bound_module())
    assert "below the threshold 16" in report[0]["reason"], report


def test_non_constant_weight_is_left_alone():
    x = relax.Var("x", relax.TensorType([1, 8, 8, 8], "float32"))
    w = relax.Var("w", relax.TensorType([8, 8, 3, 3], "float32"))
    builder = relax.BlockBuilder()
    with builder.function("main", [x, w]):
        with builder.dataflow():
            y = builder.emit_output(relax.op.nn.conv2d(x, w, padding=[1, 1]))
        builder.emit_func_output(y)
    rewrite = WinogradConv2d()
    rewritten = rewrite(builder.get())
    assert "relax.nn.conv2d" in relax_op_names(rewritten)
    assert "not a constant" in rewrite.report[0]["reason"], rewrite.report


@pytest.mark.parametrize("preset_name", ["host", "aarch64-linux", "android-arm64"])
def test_presets_run_winograd_with_their_policy(preset_name):
    policy = load_preset(preset_name).winograd
    (rewrite,) = [
        p for p in default_rewrites(load_preset(preset_name)) if isinstance(p, WinogradConv2d)
    ]
    assert (rewrite.tiles, rewrite.min_channels) == (policy.tiles, policy.min_channels)


@pytest.mark.parametrize("x_shape", [(1, 16, 12, 8), (1, 16, 14, 14)])  # 14x14: cropped
def test_winograd_builds_for_aarch64(tmp_path, x_shape):
    rewrite = WinogradConv2d(tiles=(4,))
    _, _, rewritten, report = _rewritten(tmp_path, x_shape, (16, 16, 3, 3), rewrite, pads=[1] * 4)
    assert report[0]["rewritten"] is True, report
    _, schedule = _build(rewritten, "aarch64-linux")
    assert schedule["scheduled"].get("WinogradTransform") == 2, schedule
    assert schedule["scheduled"].get("Matmul") == 1, schedule
    assert schedule["fallback"] == 0, schedule


@pytest.mark.parametrize("entry", [{"tiles": [3]}, {"tiles": []}, {"min_channel": 8}])
def test_bad_winograd_policy_is_a_one_line_error(entry):
    with pytest.raises(TargetError, match="winograd needs 'tiles'"):
        WinogradPolicy.from_dict(entry, "target preset x")
