"""CPU schedule rules: which rule takes each kernel, the schedule's shape, numbers vs ORT.

Each operator case compiles a one-operator ONNX model through ``build_pipeline`` on the host
preset, checks that the expected rule scheduled the kernel (the report would show a fallback
otherwise) and compares with ONNX Runtime: max |tvm - ort| <= 1e-4 x max |ort|.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_prune.frontend import load_onnx
from tvm_prune.pipeline import build_pipeline
from tvm_prune.schedule import cpu
from tvm_prune.schedule.apply_schedule_rules import SCHEDULED_ATTR, ApplyScheduleRules
from tvm_prune.schedule.cpu.channel_vectors import register_block
from tvm_prune.schedule.cpu.depthwise import CHAINS, MIN_CHAINS, window_tile
from tvm_prune.schedule.cpu.tiling import ReductionInfo
from tvm_prune.target import resolve_target
from tvm_prune.testing import models, networks
from tvm_prune.testing.ort import assert_outputs_close, run_ort
from tvm_prune.testing.profile import _aliased, profile_kernels

REL_TOL = 1e-4

CASES = {
    "conv3x3_s1": ("Conv", (1, 8, 14, 14), (16, 8, 3, 3), {"pads": [1] * 4}, "Conv2d"),
    # 4 vectors of output channels on AVX2, 8 pixels wide: a 2 x 4 register tile
    "conv3x3_2d_tile": ("Conv", (1, 8, 8, 8), (32, 8, 3, 3), {"pads": [1] * 4}, "Conv2d"),
    "conv3x3_s2": (
        "Conv",
        (1, 8, 15, 15),
        (12, 8, 3, 3),
        {"pads": [1] * 4, "strides": [2, 2]},
        "Conv2d",
    ),
    "conv1x1": ("Conv", (1, 16, 7, 7), (24, 16, 1, 1), {}, "Conv2d"),
    # 1x1 at 7 x 7 (MobileNetV2's tail): pixels flattened, input channels in blocks of 50
    "conv1x1_7x7_channel_blocks": ("Conv", (1, 200, 7, 7), (40, 200, 1, 1), {}, "Conv2d"),
    # a prime input channel count: no channel block (blocks of one would be slow)
    "conv1x1_7x7_prime_channels": ("Conv", (1, 131, 7, 7), (24, 131, 1, 1), {}, "Conv2d"),
    # 49 flattened pixels in 6-pixel tiles (2 x 6 on AVX2) and a one-pixel tail
    "conv1x1_7x7_pixel_tail": ("Conv", (1, 192, 7, 7), (64, 192, 1, 1), {}, "Conv2d"),
    # the same with MobileNetV2's residual add in the epilogue (3 x 4 tiles on AVX2)
    "conv1x1_7x7_pixel_tail_residual": (
        "Conv",
        (1, 96, 7, 7),
        (96, 96, 1, 1),
        {"residual": True},
        "Conv2d",
    ),
    # 1x1 at 14 x 14: pixels flattened, input channels in blocks of 16
    "conv1x1_14x14": ("Conv", (1, 96, 14, 14), (48, 96, 1, 1), {}, "Conv2d"),
    # few input channels, rows of whole double vectors: vectors along the row, not the channels
    "conv1x1_few_channels": ("Conv", (1, 8, 16, 32), (24, 8, 1, 1), {}, "Conv2d"),
    "conv_dilated": (
        "Conv",
        (1, 4, 12, 12),
        (8, 4, 3, 3),
        {"pads": [2] * 4, "dilations": [2, 2]},
        "Conv2d",
    ),
    "depthwise": (
        "Conv",
        (1, 16, 10, 10),
        (16, 1, 3, 3),
        {"pads": [1] * 4, "group": 16},
        "DepthwiseConv2d",
    ),
    # Odd padded width (2 * 10 + 1 + 2 = 23): the column-phase layout needs its pad column.
    "depthwise_s2": (
        "Conv",
        (1, 8, 13, 21),
        (8, 1, 3, 3),
        {"pads": [1] * 4, "group": 8, "strides": [2, 2]},
        "DepthwiseConv2d",
    ),
    # Even padded width (22): the copy's interior columns split from the two edge ones.
    "depthwise_s2_even": (
        "Conv",
        (1, 8, 12, 20),
        (8, 1, 3, 3),
        {"pads": [1] * 4, "group": 8, "strides": [2, 2]},
        "DepthwiseConv2d",
    ),
    # Wider than the L1 strip a padded tile may cover: several strips along each band of rows.
    "depthwise_wide": (
        "Conv",
        (1, 4, 6, 1024),
        (4, 1, 3, 3),
        {"pads": [1] * 4, "group": 4},
        "DepthwiseConv2d",
    ),
    "depthwise_s2_wide": (
        "Conv",
        (1, 4, 8, 1024),
        (4, 1, 3, 3),
        {"pads": [1] * 4, "group": 4, "strides": [2, 2]},
        "DepthwiseConv2d",
    ),
    # A prime output width above two vectors has no vector tile: Conv2d takes it.
    "depthwise_prime_width": (
        "Conv",
        (1, 4, 5, 29),
        (4, 1, 3, 3),
        {"pads": [1] * 4, "group": 4},
        "Conv2d",
    ),
    # Rows of whole vectors (16): the epilogue runs per register tile, in a band of 20 rows.
    "depthwise_vector_rows": (
        "Conv",
        (1, 8, 20, 16),
        (8, 1, 3, 3),
        {"pads": [1] * 4, "group": 8},
        "DepthwiseConv2d",
    ),
    # 7 x 7 maps are one register tile: 3 of the 30 channels per parallel iteration.
    "depthwise_one_tile_map": (
        "Conv",
        (1, 30, 7, 7),
        (30, 1, 3, 3),
        {"pads": [1] * 4, "group": 30},
        "DepthwiseConv2d",
    ),
    "depthwise_s2_one_tile_map": (
        "Conv",
        (1, 10, 14, 14),
        (10, 1, 3, 3),
        {"pads": [1] * 4, "group": 10, "strides": [2, 2]},
        "DepthwiseConv2d",
    ),
    "depthwise_5x5_unpadded": (
        "Conv",
        (1, 8, 12, 12),
        (8, 1, 5, 5),
        {"group": 8},
        "DepthwiseConv2d",
    ),
    "grouped": ("Conv", (1, 8, 9, 9), (8, 2, 3, 3), {"pads": [1] * 4, "group": 4}, "Conv2d"),
    # ResNet's stem: a 7 x 7 window unrolled a kernel row at a time.
    "stem_7x7_s2": (
        "Conv",
        (1, 3, 30, 30),
        (16, 3, 7, 7),
        {"pads": [3] * 4, "strides": [2, 2]},
        "Conv2d",
    ),
    "conv_transpose": ("ConvTranspose", (1, 8, 6, 6), (8, 4, 2, 2), {"strides": [2, 2]}, "Conv2d"),
    # Overlapping windows and whole channel vectors: legalised with a flipped, transposed kernel
    # ([C, K, R, S] read as [K, C, R, S]), which the channel-vector recipe cannot repack.
    "conv_transpose_3x3_s2": (
        "ConvTranspose",
        (1, 8, 6, 6),
        (8, 16, 3, 3),
        {"strides": [2, 2], "pads": [1] * 4, "output_padding": [1, 1]},
        "Conv2d",
    ),
    "dense": ("Gemm", (3, 40), (40, 24), {}, "Matmul"),
    # One row: the weights repacked in column panels (folded at compile time).
    "dense_one_row": ("Gemm", (1, 96), (96, 40), {}, "Matmul"),
    "maxpool": (
        "MaxPool",
        (1, 8, 12, 12),
        None,
        {"kernel_shape": [3, 3], "strides": [2, 2]},
        "Pool",
    ),
    "avgpool": (
        "AveragePool",
        (1, 8, 12, 12),
        None,
        {"kernel_shape": [2, 2], "strides": [2, 2]},
        "Pool",
    ),
    # ResNet's stem pool: padding (-inf) copied per tile, columns de-interleaved by phase.
    "maxpool_padded_s2": (
        "MaxPool",
        (1, 8, 16, 16),
        None,
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1] * 4},
        "Pool",
    ),
    # Padding left out of the average: the divisor varies at the borders (an epilogue).
    "avgpool_padded_exclusive": (
        "AveragePool",
        (1, 8, 10, 10),
        None,
        {"kernel_shape": [3, 3], "pads": [1] * 4, "count_include_pad": 0},
        "Pool",
    ),
    # A 12 x 12 plane summed into 24 partial sums (3 vectors on AVX2, 6 on NEON).
    "global_avgpool": ("GlobalAveragePool", (1, 8, 12, 12), None, {}, "Pool"),
    # 7 x 7 has no such split: one sum per plane.
    "global_avgpool_7x7": ("GlobalAveragePool", (1, 8, 7, 7), None, {}, "Pool"),
}


def compile_on(model_path, preset_name="host", rules=None):
    preset = resolve_target(preset_name)
    report: dict = {}
    model = load_onnx(model_path)
    pipeline = build_pipeline(preset, report=report, rules=rules)
    with preset.target:
        executable = tvm.compile(
            model.bound_module(), target=preset.target, relax_pipeline=pipeline
        )
    return model, executable, report


def run_vm(model, executable, inputs):
    vm = relax.VirtualMachine(executable, tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(inputs[spec.name]) for spec in model.inputs])
    return {model.outputs[0].name: result.numpy()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_numbers_match_ort(case, tmp_path):
    op, x_shape, weight, attrs, rule = CASES[case]
    path = models.save(
        networks.single_op(op, x_shape, weight=weight, **attrs), tmp_path / "op.onnx"
    )
    model, executable, report = compile_on(path)
    assert report["scheduled"].get(rule, 0) >= 1, report
    assert report["fallback"] == 0, report
    x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
    assert_outputs_close(
        run_vm(model, executable, {"x": x}), run_ort(path, {"x": x}), rel_tol=REL_TOL
    )


def _fused_kernels(path):
    preset = resolve_target("host")
    mod = load_onnx(path).bound_module()
    with preset.target:
        mod = tvm.transform.Sequential(
            relax.backend.cpu_generic.pipeline.legalize_passes(preset.target)
        )(mod)
    return preset.target, {
        gv.name_hint: f for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)
    }


def _loop_kinds(func) -> set[str]:
    text = func.script()
    return {kind for kind in ("T.parallel", "T.vectorized", "T.unroll") if kind in text}


def test_conv_schedule_vectorises_output_channels_over_repacked_weights(tmp_path):
    path = models.save(
        networks.single_op("Conv", (1, 32, 32, 32), weight=(32, 32, 3, 3), pads=[1] * 4),
        tmp_path / "conv.onnx",
    )
    target, kernels = _fused_kernels(path)
    (conv,) = [f for name, f in kernels.items() if "conv2d" in name]
    sch = cpu.Conv2d().apply(conv, target, False)
    assert sch is not None
    text = sch.mod["main"].script()
    assert _loop_kinds(sch.mod["main"]) == {"T.parallel", "T.vectorized", "T.unroll"}
    params = cpu.cpu_params(target)
    vectors, _ = register_block(32 // params.lanes("float32"), 32, 3, params)
    block = vectors * params.lanes("float32")
    # weights repacked to [K / block, C, R, S, block] by a block marked for folding
    assert f"T.int64({32 // block}), T.int64(32), T.int64(3), T.int64(3), T.int64({block})" in text
    assert '"meta_schedule.layout_rewrite_preproc": True' in text
    # parallel: the conv with its epilogue per tile (the padding and repack are too small)
    assert text.count("T.parallel") == 1


def test_depthwise_schedule_tiles_accumulators_and_pads_per_tile(tmp_path):
    """Depthwise has no axis to broadcast over: no repacking; vectors along the output width, a
    register tile of several independent vectors, the padding copied per tile (one parallel
    loop), and for stride 2 the padded rows stored by column phase so taps load whole vectors."""
    path = models.save(
        networks.single_op(
            "Conv", (1, 64, 64, 64), weight=(64, 1, 3, 3), pads=[1] * 4, group=64, strides=[2, 2]
        ),
        tmp_path / "dw.onnx",
    )
    target, kernels = _fused_kernels(path)
    (conv,) = [f for name, f in kernels.items() if "conv2d" in name]
    assert cpu.Conv2d().apply(conv, target, False) is not None  # Conv2d would take it too
    text = cpu.DepthwiseConv2d().apply(conv, target, False).mod["main"].script()
    assert "layout_rewrite_preproc" not in text
    assert text.count("T.parallel") == 1
    assert "T.vectorized(T.int64(16))" in text and "T.unroll(T.int64(2))" in text
    assert "T.int64(2), T.int64(33))" in text  # pad_temp: [.., 66 rows, 2 phases, 33 columns]


def test_depthwise_on_a_one_tile_map_pads_and_computes_channels_in_groups(tmp_path):
    """On a 7 x 7 map (one register tile per channel) each parallel iteration pads 4 channels,
    then computes them; on a 14 x 14 map, one channel per iteration."""
    texts = {}
    for size in (7, 14):
        path = models.save(
            networks.single_op(
                "Conv", (1, 192, size, size), weight=(192, 1, 3, 3), pads=[1] * 4, group=192
            ),
            tmp_path / f"dw{size}.onnx",
        )
        target, kernels = _fused_kernels(path)
        (conv,) = [f for name, f in kernels.items() if "conv2d" in name]
        texts[size] = cpu.DepthwiseConv2d().apply(conv, target, False).mod["main"].script()
    assert re.search(r"in T\.parallel\(T\.int64\(48\)\)", texts[7]), texts[7]
    assert re.search(r"in T\.parallel\(T\.int64\(192\)\)", texts[14]), texts[14]


def test_few_channel_pointwise_conv_vectorises_output_rows(tmp_path):
    """A 1x1 conv with 16 input channels writes rows of NCHW output straight from its
    accumulators: no repacked weights, no channel-vector tile to transpose back; with 32 input
    channels the channel-vector recipe stays."""
    target = resolve_target("host").target
    lanes = cpu.cpu_params(target).lanes("float32")
    texts = {}
    for channels in (16, 32):
        path = models.save(
            networks.single_op("Conv", (1, channels, 8, 2 * lanes), weight=(48, channels, 1, 1)),
            tmp_path / f"conv{channels}.onnx",
        )
        _, kernels = _fused_kernels(path)
        (conv,) = [f for name, f in kernels.items() if "conv2d" in name]
        texts[channels] = cpu.Conv2d().apply(conv, target, False).mod["main"].script()
    assert "layout_rewrite_preproc" not in texts[16]
    assert f"T.vectorized(T.int64({2 * lanes}))" in texts[16]
    assert "layout_rewrite_preproc" in texts[32]


def test_pools_take_the_window_and_partial_sum_schedules(tmp_path):
    """A padded 3x3/2 max pool is scheduled like a stride-2 depthwise conv (padding copied per
    tile in column phases); a global mean sums each plane into vectors of partial sums."""
    target = resolve_target("host").target
    texts = {}
    for name, op, attrs in (
        ("max", "MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1] * 4}),
        ("mean", "GlobalAveragePool", {}),
    ):
        path = models.save(
            networks.single_op(op, (1, 8, 32, 32), weight=None, **attrs), tmp_path / f"{name}.onnx"
        )
        _, kernels = _fused_kernels(path)
        (pool,) = kernels.values()
        texts[name] = cpu.Pool().apply(pool, target, False).mod["main"].script()
    assert "T.int64(34), T.int64(2), T.int64(17))" in texts["max"]  # [.., rows, phases, columns]
    assert "_rf = T.sblock_alloc_buffer" in texts["mean"] and "T.vectorized" in texts["mean"]


def test_padding_copy_splits_off_its_edges(tmp_path):
    """A conv's zero padding is copied with the padded rows and columns split off, so the
    interior copy is vectorised with nothing left to test per lane."""
    path = models.save(
        networks.single_op("Conv", (1, 8, 16, 16), weight=(16, 8, 3, 3), pads=[1] * 4),
        tmp_path / "conv.onnx",
    )
    target, kernels = _fused_kernels(path)
    (conv,) = [f for name, f in kernels.items() if "conv2d" in name]
    text = cpu.Conv2d().apply(conv, target, False).mod["main"].script()
    assert "in range(T.int64(1), T.int64(17)):" in text  # the interior rows
    assert "in T.vectorized(T.int64(1), T.int64(17)):" in text  # their interior columns


def test_pointwise_conv_flattens_pixels_and_blocks_input_channels(tmp_path):
    """A 1x1 conv whose input overflows half of L1 runs as a GEMM over all pixels
    (accumulators [1, K / lanes, H * W, lanes]) in blocks of input channels that fit it:
    200 x 7 x 7 in 4 blocks of 50, 96 x 14 x 14 in 6 of 16; a prime channel count (blocks of
    one) keeps rows and columns and one channel loop."""
    target = resolve_target("host").target
    params = cpu.cpu_params(target)
    lanes = params.lanes("float32")
    texts = {}
    for channels, size in ((200, 7), (131, 7), (96, 14)):
        path = models.save(
            networks.single_op("Conv", (1, channels, size, size), weight=(40, channels, 1, 1)),
            tmp_path / f"conv{channels}.onnx",
        )
        _, kernels = _fused_kernels(path)
        (conv,) = [f for name, f in kernels.items() if "conv2d" in name]
        texts[channels] = cpu.Conv2d().apply(conv, target, False).mod["main"].script()
    for channels, size, blocks, block in ((200, 7, 4, 50), (96, 14, 6, 16)):
        text = texts[channels]
        assert f"T.int64({40 // lanes}), T.int64({size * size}), T.int64({lanes})" in text
        _, pixels = register_block(40 // lanes, size * size, 1, params, tail=True)
        tiles = size * size // pixels
        assert f"in range(T.int64({blocks})):" in text
        assert f"T.grid(T.int64({tiles}), T.int64({block})):" in text
    assert "T.int64(49)" not in texts[131] and "range(T.int64(131))" in texts[131]


def test_small_kernels_stay_on_one_thread(tmp_path):
    """A parallel launch costs more than a 4x6x6 conv: no parallel loop at all."""
    path = models.save(
        networks.single_op("Conv", (1, 4, 6, 6), weight=(8, 4, 3, 3), pads=[1] * 4),
        tmp_path / "small.onnx",
    )
    target, kernels = _fused_kernels(path)
    (conv,) = [f for name, f in kernels.items() if "conv2d" in name]
    text = cpu.Conv2d().apply(conv, target, False).mod["main"].script()
    assert "T.parallel" not in text and "T.vectorized" in text


def test_weight_repacking_is_folded_at_compile_time(tmp_path):
    path = models.save(
        networks.single_op("Conv", (1, 8, 6, 6), weight=(16, 8, 3, 3), pads=[1] * 4),
        tmp_path / "conv.onnx",
    )
    _, executable, _ = compile_on(path)
    x = tvm.runtime.tensor(np.zeros((1, 8, 6, 6), np.float32))
    kernels = [row.name for row in profile_kernels(executable, [x], rounds=1)]
    assert [k for k in kernels if not k.startswith("vm.builtin")] == [
        "fused_conv2d_add_relu_prepacked"
    ]


def test_profile_reruns_each_kernel_and_leaves_the_model_alone(tmp_path):
    """The re-run timing calls each kernel a second time on the VM's own arguments: every kernel
    gets a re-run time, and the model (its constants included) still gives ORT's outputs."""
    path = models.save(networks.mobilenet_v2_like(size=64), tmp_path / "m.onnx")
    model, executable, _ = compile_on(path)
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    rows = profile_kernels(executable, [tvm.runtime.tensor(x)], rounds=2)
    kernels = [row for row in rows if not row.name.startswith("vm.builtin")]
    assert len(kernels) > 10 and all(row.rerun_ms > 0 for row in kernels)
    assert_outputs_close(
        run_vm(model, executable, {"x": x}), run_ort(path, {"x": x}), rel_tol=REL_TOL
    )


def test_profile_does_not_rerun_a_kernel_writing_in_place():
    a = tvm.runtime.tensor(np.zeros(4, np.float32))
    b = tvm.runtime.tensor(np.zeros(4, np.float32))
    assert _aliased([a, a]) and not _aliased([a, b, 3])


def test_rules_return_none_when_not_theirs(tmp_path):
    """Conv2d and Pool refuse a matmul; Matmul refuses a conv; Injective refuses reductions."""
    conv = models.save(
        networks.single_op("Conv", (1, 4, 6, 6), weight=(4, 4, 3, 3)), tmp_path / "conv.onnx"
    )
    dense = models.save(
        networks.single_op("Gemm", (2, 8), weight=(8, 4), act=None), tmp_path / "dense.onnx"
    )
    target, conv_kernels = _fused_kernels(conv)
    _, dense_kernels = _fused_kernels(dense)
    (conv_func,) = [f for name, f in conv_kernels.items() if "conv2d" in name]
    (matmul_func,) = [f for name, f in dense_kernels.items() if "matmul" in name]
    assert cpu.Matmul().apply(conv_func, target, False) is None
    assert cpu.DepthwiseConv2d().apply(conv_func, target, False) is None
    assert cpu.DepthwiseConv2d().apply(matmul_func, target, False) is None
    assert cpu.Injective().apply(conv_func, target, False) is None
    assert cpu.Conv2d().apply(matmul_func, target, False) is None
    assert cpu.Pool().apply(matmul_func, target, False) is None
    assert cpu.Matmul().apply(matmul_func, target, False) is not None


def test_rules_leave_the_input_module_unchanged(tmp_path):
    conv = models.save(
        networks.single_op("Conv", (1, 4, 6, 6), weight=(4, 4, 3, 3)), tmp_path / "conv.onnx"
    )
    target, kernels = _fused_kernels(conv)
    before = tvm.IRModule(kernels)
    with target:
        after = ApplyScheduleRules((cpu.Conv2d(),))(before)

    def scheduled(mod):
        return {gv.name_hint for gv, f in mod.functions_items() if f.attrs.get(SCHEDULED_ATTR)}

    assert scheduled(before) == set()
    assert scheduled(after) == {name for name in kernels if "conv2d" in name}


def test_report_counts_fallbacks_without_rules(conv_model):
    _, _, report = compile_on(conv_model, rules=(cpu.Conv2d(),))
    assert report["scheduled"] == {"Conv2d": 2}
    assert report["fallback"] >= 2  # batch norm + relu, matmul, ...: nothing else takes them
    assert len(report["fallback_funcs"]) == report["fallback"]


def test_target_parameters():
    host = cpu.cpu_params(resolve_target("host").target)
    arm = cpu.cpu_params(resolve_target("aarch64-linux").target)
    assert (arm.vector_bits, arm.vector_registers) == (128, 32)
    assert arm.lanes("float32") == 4
    assert host.vector_bits in (128, 256, 512)
    assert host.lanes("float32") == host.vector_bits // 32
    # L1 data caches: the preset's core (Cortex-A72 32 KiB, A76 64 KiB), this machine's own.
    assert arm.l1d_bytes == 32 * 1024
    assert cpu.cpu_params(resolve_target("android-arm64").target).l1d_bytes == 64 * 1024
    level1 = [
        index
        for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")
        if (index / "level").read_text().strip() == "1"
        and (index / "type").read_text().strip() == "Data"
    ]
    if level1:
        size = (level1[0] / "size").read_text().strip()
        assert host.l1d_bytes == int(size.rstrip("K")) * 1024


@pytest.mark.parametrize("preset", ["host", "aarch64-linux"])
def test_register_block_fits_the_register_file(preset):
    """Accumulators, the weight vectors and one broadcast input fit the vector registers; the
    tile divides the channel vectors and the output width."""
    params = cpu.cpu_params(resolve_target(preset).target)
    for channel_vectors in (1, 2, 3, 8, 40, 64):
        for width in (7, 8, 14, 28, 56, 112):
            for window in (1, 3, 7):
                vectors, pixels = register_block(channel_vectors, width, window, params)
                assert channel_vectors % vectors == 0 and width % pixels == 0
                assert vectors * pixels + vectors + 1 <= params.vector_registers


def test_register_block_shapes():
    avx2 = cpu.CpuParams(vector_bits=256, vector_registers=16, l1d_bytes=32 * 1024)
    neon = cpu.cpu_params(resolve_target("aarch64-linux").target)
    # 3x3 conv, 64 output channels, 56 wide: 2 weight vectors x 4 pixels share 6 broadcasts
    assert register_block(64 // 8, 56, 3, avx2) == (2, 4)
    # 14 wide: 1 x 7 (2 x 7 would spill, 4 x 2 loads more per FMA)
    assert register_block(256 // 8, 14, 3, avx2) == (1, 7)
    # NEON: 96 channels are 24 vectors of 4; 3 x 4 is the spill-free tile with fewest loads
    assert register_block(96 // 4, 56, 3, neon) == (3, 4)
    assert register_block(96 // 4, 14, 3, neon) == (1, 7)
    # ResNet's 7 x 7 / 2 stem: 8 pixels read 21 inputs per kernel row (not 14), so 2 x 4 wins
    assert register_block(64 // 8, 112, 7, avx2) == (1, 8)
    assert register_block(64 // 8, 112, 7, avx2, stride=2) == (2, 4)


def _window_info(channels, size, window=3, reads=2):
    """The analysis of a depthwise conv (``reads=2``) or pool writing ``size x size`` maps."""
    return ReductionInfo(
        block=None,
        spatial=(0, 1, 2, 3),
        reduction=(4, 5),
        extents=(1, channels, size, size, window, window),
        vector_axis=3,
        reuse_axis=None,
        reads=reads,
        dtype="float32",
    )


def test_window_tile_shapes():
    avx2 = cpu.CpuParams(vector_bits=256, vector_registers=16, l1d_bytes=32 * 1024)
    # 56 wide: 4 rows of one vector (4 accumulators + 9 weights fit AVX2's 16), not 1 x 7
    assert window_tile(_window_info(144, 56), avx2) == (8, 1, 4)
    assert window_tile(_window_info(192, 28), avx2) == (4, 1, 4)
    # 112 wide: double vectors, 2 rows
    assert window_tile(_window_info(32, 112), avx2) == (16, 1, 2)
    # 7 x 7: only 1 or 7 rows; one chain is latency bound, so 7 and the weights reloaded
    assert window_tile(_window_info(960, 7), avx2) == (7, 1, 7)
    # a pool has no weights: 8 chains fit
    assert window_tile(_window_info(144, 56, reads=1), avx2) == (8, 1, 8)


@pytest.mark.parametrize("preset", ["host", "aarch64-linux"])
def test_window_tile_fits_the_register_file(preset):
    """A 3 x 3 depthwise tile divides the map, and its accumulators, nine weights and one input
    fit the vector registers with at least ``MIN_CHAINS`` accumulators (maps with a side of
    14 or more have such a tile)."""
    params = cpu.cpu_params(resolve_target(preset).target)
    lanes = params.lanes("float32")
    for size in (14, 16, 28, 56, 112, 160):
        vec, vectors, rows = window_tile(_window_info(64, size), params)
        accumulators = rows * vectors * -(-vec // lanes)
        assert size % rows == 0 and size % (vec * vectors) == 0
        assert MIN_CHAINS <= accumulators <= CHAINS
        assert accumulators + 9 + 1 <= params.vector_registers


@pytest.mark.parametrize(
    ("preset", "fma", "stack_vector"),
    [("host", "vfmadd", r"\(%rsp\)"), ("aarch64-linux", "fmla", r"q\d+, \[sp")],
)
def test_conv_inner_loop_keeps_accumulators_in_registers(preset, fma, stack_vector, tmp_path):
    """The FMA loop of the register tile has no vector stack traffic (no spilled accumulators):
    checked on the assembly of the host (AVX2) and of the aarch64 preset (NEON)."""
    params = cpu.cpu_params(resolve_target(preset).target)
    if preset == "host" and (params.vector_bits, params.vector_registers) != (256, 16):
        pytest.skip("the host assembly checked is AVX2's")
    path = models.save(
        networks.single_op("Conv", (1, 32, 28, 28), weight=(64, 32, 3, 3), pads=[1] * 4),
        tmp_path / "conv.onnx",
    )
    _, executable, _ = compile_on(path, preset)
    loop = _fma_loop(executable.mod.imports[0].inspect_source("s"), fma)
    vectors, pixels = register_block(64 // params.lanes("float32"), 28, 3, params)
    assert vectors * pixels > 1
    assert loop.count(fma) >= vectors * pixels * 3  # one kernel row of the tile, at least
    assert not re.search(stack_vector, loop), loop


def test_pointwise_pixel_tail_is_split_off_and_keeps_accumulators_in_registers(tmp_path):
    """A 7 x 7 pointwise conv flattened to 49 pixels takes a register tile whose pixels do not
    divide 49 (2 x 6 on AVX2); the remainder is a tail tile split off by ``loop_partition``,
    and the full tiles' FMA loop keeps its 12 accumulators in registers (no vector stack
    traffic). Numbers: ``conv1x1_7x7_pixel_tail`` above."""
    params = cpu.cpu_params(resolve_target("host").target)
    if (params.vector_bits, params.vector_registers) != (256, 16):
        pytest.skip("the host assembly checked is AVX2's")
    path = models.save(
        networks.single_op("Conv", (1, 192, 7, 7), weight=(64, 192, 1, 1)),
        tmp_path / "conv.onnx",
    )
    vectors, pixels = register_block(64 // 8, 49, 1, params, tail=True)
    assert (vectors, pixels) == (2, 6)
    target, kernels = _fused_kernels(path)
    (conv,) = [f for name, f in kernels.items() if "conv2d" in name]
    text = cpu.Conv2d().apply(conv, target, False).mod["main"].script()
    assert "range(T.int64(8), T.int64(9))" in text  # the tail tile, after 8 full ones
    _, executable, _ = compile_on(path)
    loop = _fma_loop(executable.mod.imports[0].inspect_source("s"), "vfmadd")
    assert loop.count("vfmadd") >= vectors * pixels
    assert not re.search(r"\(%rsp\)", loop), loop


def _fma_loop(asm: str, fma: str) -> str:
    """The FMA loop of a kernel's assembly: the basic block with the most FMAs, up to its
    backward branch."""
    blocks = re.split(r"^\.LBB\d+_\d+:", asm, flags=re.M)
    return re.split(r"\tb\.|\tj", max(blocks, key=lambda block: block.count(fma)))[0]


@pytest.mark.parametrize(
    ("preset", "fma", "stack_vector"),
    [("host", "vfmadd", r"\(%rsp\)"), ("aarch64-linux", "fmla", r"q\d+, \[sp")],
)
def test_winograd_gemm_inner_loop_keeps_accumulators_in_registers(preset, fma, stack_vector):
    """ResNet's 64-channel Winograd GEMM (224 tiles, weights in panels of 4 rows) keeps its
    register tile within ``max_accumulators`` and out of the stack. With NEON's 32 registers
    minus 4 it took 4 x 7 vectors and its FMA loop made 190 vector stack accesses."""
    from tvm import te

    from tvm_prune.transform.winograd_conv2d import WEIGHT_PANEL, _gemm

    target = resolve_target(preset).target
    params = cpu.cpu_params(target)
    weights = te.placeholder((36, 64 // WEIGHT_PANEL, 64, WEIGHT_PANEL), name="U")
    inputs = te.placeholder((36, 64, 224), name="V")
    func = te.create_prim_func([weights, inputs, _gemm(weights, inputs)])
    sch = cpu.Matmul().apply(func.with_attr("global_symbol", "main"), target, False)
    (vec,) = {int(v) for v in re.findall(r"T\.vectorized\((\d+)\)", sch.mod["main"].script())}
    accumulators = WEIGHT_PANEL * vec // params.lanes("float32")
    assert 4 <= accumulators <= params.max_accumulators
    loop = _fma_loop(tvm.compile(sch.mod, target=target).mod.inspect_source("s"), fma)
    assert loop.count(fma) >= accumulators
    assert not re.search(stack_vector, loop), loop


def test_matmul_register_tile_follows_weight_panels():
    """The Winograd GEMM's weights come in panels of 4 rows: the Matmul rule tiles 4 rows (its
    own choice for 64 tiles would be 2 x 32 on AVX2) and reads each panel in one pass over the
    channels (no chunks); numbers vs numpy, max |error| <= 1e-5 x max |reference|."""
    from tvm import te

    from tvm_prune.transform.winograd_conv2d import WEIGHT_PANEL, _gemm

    target = resolve_target("host").target
    panels, channels, tiles = 8, 128, 64
    weights = te.placeholder((2, panels, channels, WEIGHT_PANEL), name="U")
    inputs = te.placeholder((2, channels, tiles), name="V")
    func = te.create_prim_func([weights, inputs, _gemm(weights, inputs)])
    sch = cpu.Matmul().apply(func.with_attr("global_symbol", "main"), target, False)
    assert sch is not None
    text = sch.mod["main"].script()
    assert re.search(rf"in T\.unroll\({WEIGHT_PANEL}\)", text), text
    assert f"range({channels})" in text  # the reduction is one loop
    rng = np.random.default_rng(0)
    u = rng.standard_normal((2, panels, channels, WEIGHT_PANEL)).astype("float32")
    v = rng.standard_normal((2, channels, tiles)).astype("float32")
    out = tvm.runtime.tensor(np.zeros((2, panels * WEIGHT_PANEL, tiles), "float32"))
    tvm.compile(sch.mod, target=target)["main"](tvm.runtime.tensor(u), tvm.runtime.tensor(v), out)
    rows = u.transpose(0, 1, 3, 2).reshape(2, panels * WEIGHT_PANEL, channels)
    expected = rows @ v
    assert np.abs(out.numpy() - expected).max() <= 1e-5 * np.abs(expected).max()


@pytest.mark.parametrize("transposed", [False, True])
def test_matrix_vector_weights_in_column_panels(transposed):
    """One output row: the weight (``[K, N]`` or ``[N, K]``) is repacked to ``[N / v, K, v]`` by
    a layout-rewrite preprocess block and read one panel per tile; numbers vs numpy, max |error|
    <= 1e-5 x max |reference|."""
    from tvm import te

    target = resolve_target("host").target
    rows, depth, columns = 1, 96, 200
    a = te.placeholder((rows, depth), name="A")
    b = te.placeholder((columns, depth) if transposed else (depth, columns), name="B")
    k = te.reduce_axis((0, depth), "k")
    out = te.compute(
        (rows, columns),
        lambda i, j: te.sum(a[i, k] * (b[j, k] if transposed else b[k, j]), axis=k),
        name="T_matmul",
    )
    func = te.create_prim_func([a, b, out]).with_attr("global_symbol", "main")
    sch = cpu.Matmul().apply(func, target, False)
    assert sch is not None
    text = sch.mod["main"].script()
    assert "meta_schedule.layout_rewrite_preproc" in text, text
    width = int(re.search(r"B_global\[v_j // (\d+), v_k, v_j % \1\]", text).group(1))
    assert columns % width == 0 and width > cpu.base.cpu_params(target).lanes("float32")
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((rows, depth)).astype("float32")
    b_np = rng.standard_normal([int(d) for d in b.shape]).astype("float32")
    result = tvm.runtime.tensor(np.zeros((rows, columns), "float32"))
    tvm.compile(sch.mod, target=target)["main"](
        tvm.runtime.tensor(a_np), tvm.runtime.tensor(b_np), result
    )
    expected = a_np @ (b_np.T if transposed else b_np)
    assert np.abs(result.numpy() - expected).max() <= 1e-5 * np.abs(expected).max()
