"""Compile once, evaluate many weight sets: the engine every pruning method runs on.

``Model.mod`` already takes the weights as parameters of ``main``, so it is compiled once for
the host and each candidate weight set is evaluated by passing different arrays. Weight arrays
are converted to TVM tensors once; a candidate only converts the layers it changes.

Both compiles use the host preset's pipeline with our schedule rules: TVM's default ``llvm``
build runs naive loops, 8-13x slower per evaluation (digits CNN, PP-OCR det at 160x160), and a
search runs hundreds of evaluations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from ..model import Model
from ..package.threads import use_all_cores
from ..pipeline import build_pipeline
from ..target import resolve_target

logger = logging.getLogger(__name__)


class Evaluator:
    """Runs ``model`` on a fixed batch of inputs with any weight values.

    Parameters
    ----------
    model : Model
        The model; compiled once for this machine at construction.
    inputs : Mapping[str, np.ndarray]
        Input arrays keyed by input name, stacked along a new leading axis (``N`` samples,
        each of the model's input shape).
    """

    def __init__(self, model: Model, inputs: Mapping[str, np.ndarray]):
        start = time.perf_counter()
        self.model = model
        self._names = list(model.params)
        self._dense = {
            name: tvm.runtime.tensor(np.ascontiguousarray(v)) for name, v in model.params.items()
        }
        self._vm = host_vm(model.mod)
        self._samples = _split_samples(model, inputs)
        self.compile_seconds = time.perf_counter() - start
        self.runs = 0
        self.run_seconds = 0.0
        logger.debug("evaluator compiled in %.1f s", self.compile_seconds)

    def run(self, changed: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """Every output, stacked over the samples, with ``changed`` weights replacing the model's.

        Returns one array per model output, shape ``(N, *output_shape)``.
        """
        start = time.perf_counter()
        weights = dict(self._dense)
        for name, value in (changed or {}).items():
            weights[name] = tvm.runtime.tensor(np.ascontiguousarray(value, dtype=np.float32))
        ordered = [weights[name] for name in self._names]
        outputs: list[list[np.ndarray]] = []
        for sample in self._samples:
            result = self._vm["main"](*sample, *ordered)
            arrays = _as_arrays(result)
            if not outputs:
                outputs = [[] for _ in arrays]
            for store, array in zip(outputs, arrays, strict=True):
                store.append(array)
        self.runs += 1
        self.run_seconds += time.perf_counter() - start
        return [np.stack(store) for store in outputs]


MAX_LEAST_SQUARES_FEATURES = 1152
"""Largest layer fan-in (``C * KH * KW``) given second moments for least-squares compensation:
solving one ``F x F`` system per output channel grows as ``F^3`` (F = 1152, 256 channels: about
a second per layer on 2 cores); wider layers get bias correction only."""


@dataclass(frozen=True)
class InputMoments:
    """Calibration statistics of one layer's data input.

    Attributes
    ----------
    mean : np.ndarray
        ``conv2d``: the mean input each kernel tap sees, ``[C, KH, KW]`` (padding zeros
        included, so the bias correction is exact in expectation); otherwise one value per input
        channel (axis 1 of 4-d inputs, last axis of matmul inputs).
    second : np.ndarray or None
        ``E[p p^T]`` over input patches ``p`` (``conv2d``: the ``C*KH*KW`` values under the
        kernel in OIHW order; ``matmul``: the input row) with a constant 1 appended, so the last
        row holds the mean. Only for ungrouped layers with at most
        :data:`MAX_LEAST_SQUARES_FEATURES` features, and only when asked for.
    """

    mean: np.ndarray
    second: np.ndarray | None


def layer_input_moments(
    model: Model, inputs: Mapping[str, np.ndarray], layers, *, second: bool
) -> dict[str, InputMoments]:
    """:class:`InputMoments` of each layer's data input over the samples, keyed by weight name.

    Compiles, once, a copy of ``main`` that returns the layers' inputs.
    """
    main = relax.transform.ToNonDataflow()(model.mod)["main"]
    by_name = {var.name: var for var in main.params}
    by_name.update({b.var.name: b.var for block in main.body.blocks for b in block.bindings})
    taps = [by_name[layer.input_var.name] for layer in layers]
    body = main.body
    new_body = relax.BlockBuilder().normalize(relax.SeqExpr(body.blocks, relax.Tuple(taps)))
    func = relax.Function(main.params, new_body, None, main.is_pure, main.attrs)
    mod = tvm.IRModule({"main": func})
    for gv, f in model.mod.functions_items():
        if gv.name_hint != "main":
            mod[gv] = f
    vm = host_vm(mod)
    weights = [tvm.runtime.tensor(np.ascontiguousarray(v)) for v in model.params.values()]
    wants_second = [second and _least_squares_fits(layer, model.params) for layer in layers]
    mean_sums: list = [0.0] * len(taps)
    second_sums: list = [0.0] * len(taps)
    samples = _split_samples(model, inputs)
    for sample in samples:
        for i, value in enumerate(_as_arrays(vm["main"](*sample, *weights))):
            layer = layers[i]
            if layer.conv_geometry is not None:
                kernel = model.params[layer.weight].shape[2:]
                mean_sums[i] = mean_sums[i] + patch_means(value, layer.conv_geometry, kernel)
            elif value.ndim == 4:
                mean_sums[i] = mean_sums[i] + value.astype(np.float64).mean(axis=(0, 2, 3))
            else:
                flat = value.astype(np.float64).reshape(-1, value.shape[-1])
                mean_sums[i] = mean_sums[i] + flat.mean(axis=0)
            if wants_second[i]:
                rows = (
                    patches(value, layer.conv_geometry, kernel)
                    if layer.conv_geometry is not None
                    else value.astype(np.float64).reshape(-1, value.shape[-1])
                )
                rows = np.concatenate([rows, np.ones((len(rows), 1))], axis=1)
                second_sums[i] = second_sums[i] + rows.T @ rows / len(rows)
    count = len(samples)
    return {
        layer.weight: InputMoments(
            mean=mean_sums[i] / count, second=second_sums[i] / count if wants_second[i] else None
        )
        for i, layer in enumerate(layers)
    }


def _least_squares_fits(layer, params: Mapping[str, np.ndarray]) -> bool:
    weight = np.asarray(params[layer.weight])
    if layer.op == "matmul":
        return weight.shape[1 - layer.out_axis] <= MAX_LEAST_SQUARES_FEATURES
    if layer.op != "conv2d" or layer.conv_geometry is None:
        return False
    in_channels = int(layer.input_var.ty.shape[1])
    return in_channels == weight.shape[1] and weight[0].size <= MAX_LEAST_SQUARES_FEATURES


def patch_means(value: np.ndarray, geometry, kernel: tuple[int, int]) -> np.ndarray:
    """``[C, KH, KW]``: mean of the padded input under each kernel tap over all outputs."""
    strides, padding, dilation, (out_h, out_w) = geometry
    x = np.pad(
        value.astype(np.float64),
        ((0, 0), (0, 0), (padding[0], padding[2]), (padding[1], padding[3])),
    )
    result = np.empty((x.shape[1], *kernel))
    for kh in range(kernel[0]):
        for kw in range(kernel[1]):
            top, left = kh * dilation[0], kw * dilation[1]
            window = x[
                :,
                :,
                top : top + strides[0] * (out_h - 1) + 1 : strides[0],
                left : left + strides[1] * (out_w - 1) + 1 : strides[1],
            ]
            result[:, kh, kw] = window.mean(axis=(0, 2, 3))
    return result


def patches(value: np.ndarray, geometry, kernel: tuple[int, int]) -> np.ndarray:
    """``[N * OH * OW, C * KH * KW]``: the padded input under the kernel at every output pixel,
    features in the weight's OIHW order (im2col)."""
    strides, padding, dilation, (out_h, out_w) = geometry
    x = np.pad(
        value.astype(np.float64),
        ((0, 0), (0, 0), (padding[0], padding[2]), (padding[1], padding[3])),
    )
    taps = [
        x[
            :,
            :,
            kh * dilation[0] : kh * dilation[0] + strides[0] * (out_h - 1) + 1 : strides[0],
            kw * dilation[1] : kw * dilation[1] + strides[1] * (out_w - 1) + 1 : strides[1],
        ]
        for kh in range(kernel[0])
        for kw in range(kernel[1])
    ]
    stacked = np.stack(taps, axis=2)  # N, C, KH*KW, OH, OW
    n, c, k, h, w = stacked.shape
    return stacked.transpose(0, 3, 4, 1, 2).reshape(n * h * w, c * k)


def host_vm(mod: tvm.IRModule, report: dict | None = None) -> relax.VirtualMachine:
    """``mod`` compiled for this machine with the host preset's pipeline (our schedule rules);
    ``report`` gets the rules' counts (:class:`~tvm_prune.schedule.ApplyScheduleRules`)."""
    preset = resolve_target("host")
    with preset.target:
        pipeline = build_pipeline(preset, report=report)
        executable = tvm.compile(mod, target=preset.target, relax_pipeline=pipeline)
    use_all_cores()
    return relax.VirtualMachine(executable, tvm.cpu())


def _split_samples(model: Model, inputs: Mapping[str, np.ndarray]) -> list[list]:
    count = None
    arrays = []
    for spec in model.inputs:
        array = np.asarray(inputs[spec.name], dtype=spec.dtype)
        array = array.reshape(-1, *spec.shape)
        count = len(array) if count is None else min(count, len(array))
        arrays.append(array)
    return [[tvm.runtime.tensor(a[i]) for a in arrays] for i in range(count or 0)]


def _as_arrays(result) -> Sequence[np.ndarray]:
    if isinstance(result, tvm.runtime.Tensor):
        return [result.numpy()]
    return [item.numpy() for item in result]
