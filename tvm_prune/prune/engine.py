"""Compile once, evaluate many weight sets: the engine every pruning method runs on.

``Model.mod`` already takes the weights as parameters of ``main``, so it is compiled once for
the host and each candidate weight set is evaluated by passing different arrays. Weight arrays
are converted to TVM tensors once; a candidate only converts the layers it changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import tvm
from tvm import relax

from ..model import Model

logger = logging.getLogger(__name__)


class Evaluator:
    """Runs ``model`` on a fixed batch of inputs with any weight values.

    Parameters
    ----------
    model : Model
        The model; compiled once for ``llvm`` (this machine) at construction.
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
        executable = tvm.compile(model.mod, target="llvm")
        self._vm = relax.VirtualMachine(executable, tvm.cpu())
        self._samples = _split_samples(model, inputs)
        self.compile_seconds = time.perf_counter() - start
        self.runs = 0
        self.run_seconds = 0.0
        logger.debug("evaluator compiled in %.1f s", self.compile_seconds)

    @property
    def num_samples(self) -> int:
        return len(self._samples)

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


def layer_input_means(model: Model, inputs: Mapping[str, np.ndarray], layers) -> dict:
    """Mean of each layer's data input over the samples.

    Compiles, once, a copy of ``main`` that returns the layers' inputs. Returns, per layer
    weight name: for ``conv2d`` the mean input each kernel tap sees, ``[C, KH, KW]`` (padding
    zeros included, so the bias correction is exact in expectation); otherwise one value per
    input channel (axis 1 of 4-d inputs, last axis of matmul inputs).
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
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    weights = [tvm.runtime.tensor(np.ascontiguousarray(v)) for v in model.params.values()]
    sums: list[np.ndarray | None] = [None] * len(taps)
    samples = _split_samples(model, inputs)
    for sample in samples:
        for i, value in enumerate(_as_arrays(vm["main"](*sample, *weights))):
            geometry = layers[i].conv_geometry
            if geometry is not None:
                kernel = model.params[layers[i].weight].shape[2:]
                mean = patch_means(value, geometry, kernel)
            elif value.ndim == 4:
                mean = value.astype(np.float64).mean(axis=(0, 2, 3))
            else:
                mean = value.astype(np.float64).reshape(-1, value.shape[-1]).mean(axis=0)
            sums[i] = mean if sums[i] is None else sums[i] + mean
    return {layer.weight: s / len(samples) for layer, s in zip(layers, sums, strict=True)}


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
