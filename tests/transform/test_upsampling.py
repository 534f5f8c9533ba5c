"""LowerUpsampling + EmitUpsampleKernels: exact against ONNX Runtime and the ONNX reference
evaluator for every supported mode, refusals leave the IR unchanged and say why.

Tolerance: max |ours - reference| <= 1e-5 x max |reference| (nearest is exact: a copy).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tvm
from onnx.reference import ReferenceEvaluator
from tvm import relax

import tvm_prune
from tvm_prune.testing import models
from tvm_prune.testing.ort import relative_error, run_ort
from tvm_prune.transform.emit_upsample_kernels import EmitUpsampleKernels
from tvm_prune.transform.lower_upsampling import LowerUpsampling

from ..conftest import relax_op_names

SHAPE = (1, 3, 5, 7)
REL_TOL = 1e-5


def _run(mod: tvm.IRModule, x: np.ndarray) -> np.ndarray:
    executable = tvm.compile(mod, tvm.target.Target({"kind": "llvm"}))
    return relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()


def _lowered(mod: tvm.IRModule) -> tuple[tvm.IRModule, list, list]:
    lower, emit = LowerUpsampling(), EmitUpsampleKernels()
    out = emit(lower(mod))
    return out, lower.report, emit.report


NEAREST = [
    (coordinate, rounding, scales)
    for coordinate in ("asymmetric", "half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn")
    for rounding in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
    for scales in ((2, 2), (3, 5))
]
LINEAR = [
    (coordinate, scales)
    for coordinate in ("half_pixel", "pytorch_half_pixel", "asymmetric")
    for scales in ((2, 2), (4, 3), (8, 8))
]


@pytest.mark.parametrize(("coordinate", "rounding", "scales"), NEAREST)
def test_nearest(tmp_path, coordinate, rounding, scales):
    proto = models.resize(
        SHAPE, scales, mode="nearest", coordinate_mode=coordinate, nearest_mode=rounding
    )
    _check(tmp_path, proto)


@pytest.mark.parametrize(("coordinate", "scales"), LINEAR)
def test_linear(tmp_path, coordinate, scales):
    proto = models.resize(SHAPE, scales, mode="linear", coordinate_mode=coordinate)
    _check(tmp_path, proto)


def _check(tmp_path, proto):
    path = models.save(proto, tmp_path / "resize.onnx")
    mod = tvm_prune.load_onnx(path).mod
    lowered, lower_report, emit_report = _lowered(mod)
    assert [e["rewritten"] for e in lower_report] == [True], lower_report
    assert [e["rewritten"] for e in emit_report] == [True], emit_report
    # The kernel clamps at the border exactly when the lowering padded with edge values.
    edge = any(lower_report[0]["edge_pad"])
    assert emit_report[0]["border"] == ("edge" if edge else "zero"), lower_report
    assert not {"relax.image.resize2d", "relax.nn.conv2d_transpose"} & relax_op_names(lowered)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    ours = _run(lowered, x)
    assert relative_error(ours, run_ort(path, {"x": x})["y"]) <= REL_TOL
    coordinate = next(
        a.s.decode()
        for a in proto.graph.node[0].attribute
        if a.name == "coordinate_transformation_mode"
    )
    if coordinate != "tf_half_pixel_for_nn":  # deprecated: the reference evaluator lacks it
        reference = ReferenceEvaluator(proto).run(None, {"x": x})[0]
        assert relative_error(ours, reference) <= REL_TOL


def test_lowered_transposed_conv_alone_is_exact(tmp_path):
    """The intermediate form (before the kernel) is itself exact: a real conv2d_transpose."""
    proto = models.resize(SHAPE, (3, 2), mode="linear", coordinate_mode="half_pixel")
    path = models.save(proto, tmp_path / "r.onnx")
    lowered = LowerUpsampling()(tvm_prune.load_onnx(path).mod)
    assert "relax.nn.conv2d_transpose" in relax_op_names(lowered)
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    assert relative_error(_run(lowered, x), run_ort(path, {"x": x})["y"]) <= REL_TOL


@pytest.mark.parametrize(
    ("proto", "reason"),
    [
        (
            models.resize(SHAPE, (2, 2), mode="linear", coordinate_mode="align_corners"),
            "align_corners: the input offset changes",
        ),
        (
            models.resize(SHAPE, (2, 2), mode="cubic", coordinate_mode="half_pixel"),
            "cubic interpolation",
        ),
    ],
    ids=["align_corners", "cubic"],
)
def test_refused_modes_leave_the_ir_unchanged(tmp_path, proto, reason):
    mod = tvm_prune.load_onnx(models.save(proto, tmp_path / "r.onnx")).mod
    lowered, lower_report, _ = _lowered(mod)
    tvm.ir.assert_structural_equal(lowered, mod)
    assert lower_report[0]["rewritten"] is False
    assert reason in lower_report[0]["reason"]


def test_fractional_scale_is_refused(tmp_path):
    proto = models.resize((1, 2, 4, 4), (2, 2), mode="nearest", coordinate_mode="asymmetric")
    proto.graph.initializer[0].CopyFrom(
        onnx.numpy_helper.from_array(np.array([1, 1, 1.5, 2], np.float32), "scales")
    )
    proto.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 6
    proto.graph.output[0].type.tensor_type.shape.dim[3].dim_value = 8
    mod = tvm_prune.load_onnx(models.save(proto, tmp_path / "r.onnx")).mod
    lowered, report, _ = _lowered(mod)
    tvm.ir.assert_structural_equal(lowered, mod)
    assert "scale 6/4 is not an integer" in report[0]["reason"]


def test_idempotent(tmp_path):
    proto = models.resize(SHAPE, (2, 2), mode="linear", coordinate_mode="half_pixel")
    once, _, _ = _lowered(tvm_prune.load_onnx(models.save(proto, tmp_path / "r.onnx")).mod)
    twice, lower_report, emit_report = _lowered(once)
    tvm.ir.assert_structural_equal(twice, once)
    assert lower_report == [] and emit_report == []


def _conv_transpose_model(weight: np.ndarray, *, stride: int, pad: int, groups: int):
    channels = weight.shape[0]
    node = onnx.helper.make_node(
        "ConvTranspose", ["x", "w"], ["y"], strides=[stride, stride], pads=[pad] * 4, group=groups
    )
    out = (SHAPE[2] - 1) * stride + weight.shape[2] - 2 * pad
    out_w = (SHAPE[3] - 1) * stride + weight.shape[3] - 2 * pad
    graph = onnx.helper.make_graph(
        [node],
        "convt",
        [
            onnx.helper.make_tensor_value_info(
                "x", onnx.TensorProto.FLOAT, [1, channels, *SHAPE[2:]]
            )
        ],
        [
            onnx.helper.make_tensor_value_info(
                "y", onnx.TensorProto.FLOAT, [1, channels, out, out_w]
            )
        ],
        [onnx.numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def _bilinear_kernel(stride: int) -> np.ndarray:
    """The FCN initialisation: a (2s)x(2s) tent, as in FCN/ U-Net style upsampling layers."""
    size = 2 * stride
    center = stride - 0.5
    tent = 1 - np.abs(np.arange(size) - center) / stride
    return np.outer(tent, tent)


@pytest.mark.parametrize("groups", ["depthwise", "diagonal"])
def test_fcn_bilinear_conv_transpose_is_recognised(tmp_path, groups):
    channels, stride = 3, 2
    tent = _bilinear_kernel(stride)
    if groups == "depthwise":
        weight, group = np.broadcast_to(tent, (channels, 1, *tent.shape)).copy(), channels
    else:
        weight = np.zeros((channels, channels, *tent.shape))
        weight[np.arange(channels), np.arange(channels)] = tent
        group = 1
    proto = _conv_transpose_model(weight, stride=stride, pad=stride // 2, groups=group)
    path = models.save(proto, tmp_path / "ct.onnx")
    model = tvm_prune.load_onnx(path)
    lowered, _, emit_report = _lowered(model.bound_module())
    assert emit_report[0]["rewritten"] is True, emit_report
    assert emit_report[0]["border"] == "zero"
    x = np.random.default_rng(2).standard_normal((1, channels, *SHAPE[2:])).astype(np.float32)
    assert relative_error(_run(lowered, x), run_ort(path, {"x": x})["y"]) <= REL_TOL


def test_learned_conv_transpose_is_left_alone(tmp_path):
    weight = np.random.default_rng(3).standard_normal((3, 1, 4, 4))
    proto = _conv_transpose_model(weight, stride=2, pad=1, groups=3)
    model = tvm_prune.load_onnx(models.save(proto, tmp_path / "ct.onnx"))
    bound = model.bound_module()
    lowered, _, emit_report = _lowered(bound)
    tvm.ir.assert_structural_equal(lowered, relax.transform.DeadCodeElimination()(bound))
    assert emit_report[0]["rewritten"] is False
    assert "different kernels" in emit_report[0]["reason"]


@pytest.mark.slow
def test_ppocr_det_with_and_without_the_rewrites(tmp_path):
    """PP-OCRv4 det: 6 nearest Resizes (x2, x4, x8) become kernels (3 with their add), its 2 learned
    ConvTransposes are left to LowerConvTransposeToConv, and the package still equals ORT."""
    path = models.ppocr_det_model()
    shapes = {"x": (1, 3, 256, 256)}
    package = tvm_prune.compile(path, input_shapes=shapes, output=tmp_path / "det.tar")
    transforms = {t["name"]: t["report"]["rewrites"] for t in package.metadata.transforms}
    resizes = transforms["LowerUpsampling"]
    assert len(resizes) == 6 and all(r["rewritten"] for r in resizes)
    assert sorted({r["scale"][0] for r in resizes}) == [2, 4, 8]
    kernels = transforms["EmitUpsampleKernels"]
    assert sum(k["rewritten"] for k in kernels) == 6
    assert sum(k.get("epilogue") == "add" for k in kernels) == 3  # the FPN's top-down adds
    learned = [k for k in kernels if not k["rewritten"]]
    assert len(learned) == 2 and all(k["reason"] for k in learned)
    assert [k["rewritten"] for k in transforms["LowerConvTransposeToConv"]] == [True, True]

    plain = tvm_prune.compile(
        path,
        input_shapes=shapes,
        output=tmp_path / "plain.tar",
        # Batch norms folded in both builds: the fold rounds the scaled weights once (2.6e-5 of
        # the output here), and this compares the upsampling rewrites, exact to 1e-5.
        disabled_passes=[
            "FoldUpsampleIntoConv",
            "LowerUpsampling",
            "EmitUpsampleKernels",
            "LowerConvTransposeToConv",
            "DenseToGroupedConv",
            "RegroupConv",
            "WinogradConv2d",
        ],
    )
    assert [t["name"] for t in plain.metadata.transforms] == ["FoldBatchNormIntoConv"]
    image = models.document_image(256, 256)
    ours, reference = package.run({"x": image}), plain.run({"x": image})
    (name,) = reference
    assert relative_error(ours[name], reference[name]) <= 1e-5
    assert relative_error(ours[name], run_ort(path, {"x": image})[name]) <= 1e-4


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_legacy_upsample(tmp_path, mode):
    """Opset-8 Upsample: imported right (nearest needs FixUpsampleRounding), then lowered."""
    proto = models.upsample(SHAPE, (2, 3), mode=mode)
    path = models.save(proto, tmp_path / "up.onnx")
    mod = tvm_prune.load_onnx(path).mod
    x = np.random.default_rng(4).standard_normal(SHAPE).astype(np.float32)
    expected = run_ort(path, {"x": x})["y"]
    assert relative_error(_run(mod, x), expected) <= REL_TOL
    lowered, lower_report, _ = _lowered(mod)
    assert lower_report[0]["rewritten"] is True
    assert relative_error(_run(lowered, x), expected) <= REL_TOL


def test_kernel_builds_for_aarch64(tmp_path):
    """The scheduled kernel cross-compiles for the aarch64 preset (running it there is the
    device issue's job)."""
    proto = models.resize((1, 8, 16, 16), (2, 2), mode="linear", coordinate_mode="half_pixel")
    path = models.save(proto, tmp_path / "r.onnx")
    package = tvm_prune.compile(path, target="aarch64-linux", output=tmp_path / "a.tar")
    (emitted,) = [t for t in package.metadata.transforms if t["name"] == "EmitUpsampleKernels"]
    assert emitted["report"]["rewrites"][0]["rewritten"] is True
    assert package.members["mod.so"][:4] == b"\x7fELF"
    assert package.members["mod.so"][18] == 183  # e_machine EM_AARCH64


def _resize_then_add(scales, *, mode, also_output):
    """``z = Resize(x) + skip`` (FPN top-down); ``also_output`` makes the resize a second
    output, so it has another use and must not be fused."""
    proto = models.resize(SHAPE, scales, mode=mode, coordinate_mode="half_pixel")
    n, c, h, w = SHAPE
    out_shape = [n, c, h * scales[0], w * scales[1]]
    graph = proto.graph
    graph.node.append(onnx.helper.make_node("Add", ["skip", "y"], ["z"], name="add"))
    graph.input.append(
        onnx.helper.make_tensor_value_info("skip", onnx.TensorProto.FLOAT, out_shape)
    )
    outputs = [onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, out_shape)]
    if not also_output:
        del graph.output[:]
    graph.output.extend(outputs)
    return proto


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("also_output", [False, True])
def test_add_after_upsampling_fused_into_the_kernel(tmp_path, mode, also_output):
    """An add of the upsampled map becomes part of the kernel when it is the map's only use;
    otherwise the kernel and the add stay apart. Both equal ORT."""
    path = models.save(
        _resize_then_add((2, 3), mode=mode, also_output=also_output), tmp_path / "m.onnx"
    )
    lowered, _, emit_report = _lowered(tvm_prune.load_onnx(path).mod)
    assert [e["rewritten"] for e in emit_report] == [True]
    assert emit_report[0].get("epilogue") == (None if also_output else "add")
    assert ("relax.add" in relax_op_names(lowered)) == also_output
    rng = np.random.default_rng(1)
    inputs = {
        "x": rng.standard_normal(SHAPE).astype(np.float32),
        "skip": rng.standard_normal((1, 3, 10, 21)).astype(np.float32),
    }
    executable = tvm.compile(lowered, tvm.target.Target({"kind": "llvm"}))
    result = relax.VirtualMachine(executable, tvm.cpu())["main"](
        *(tvm.runtime.tensor(inputs[name]) for name in ("x", "skip"))
    )
    ours = result if not also_output else result[-1]
    reference = run_ort(path, inputs)["z"]
    assert relative_error(ours.numpy(), reference) <= REL_TOL
