"""Where test models come from: small ONNX graphs built here, and models shipped in packages.

Builders return ``onnx.ModelProto`` objects made with ``onnx.helper`` from seeded random weights;
``save`` writes one to a file. Third-party models are looked up in installed packages without
importing them (their runtime dependencies are not needed to read a file).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def onnx_data_dir() -> Path:
    """``onnx/backend/test/data`` of the installed onnx package."""
    return Path(onnx.__file__).parent / "backend" / "test" / "data"


def package_file(package: str, relative: str) -> Path:
    """A file inside an installed (not imported) package, or ``FileNotFoundError``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def ppocr_det_model() -> Path:
    """PP-OCRv4 text detection from the rapidocr-onnxruntime wheel (weights as initializers)."""
    return package_file("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx")


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    onnx.save(model, str(path))
    return Path(path)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def conv_bn_relu(
    *, channels: int = 8, size: int = 16, weights_as_constants: bool = False, seed: int = 0
) -> onnx.ModelProto:
    """Conv 3x3 -> BatchNormalization -> Relu -> Conv 1x1 -> Flatten -> Gemm; input ``x``.

    With ``weights_as_constants`` the weights are ``Constant`` nodes, as PaddlePaddle exports
    them, instead of initializers.
    """
    rng = _rng(seed)
    tensors = {
        "w1": rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.3,
        "b1": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "gamma": rng.uniform(0.5, 1.5, channels).astype(np.float32),
        "beta": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "mean": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "var": rng.uniform(0.5, 1.5, channels).astype(np.float32),
        "w2": rng.standard_normal((4, channels, 1, 1)).astype(np.float32) * 0.3,
        "fc_w": rng.standard_normal((4 * size * size, 10)).astype(np.float32) * 0.05,
        "fc_b": rng.standard_normal(10).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node(
            "BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn"], name="bn1"
        ),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Flatten", ["c2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc"),
    ]
    if weights_as_constants:
        constants = [
            helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))
            for name, value in tensors.items()
        ]
        nodes, initializers = constants + nodes, []
    else:
        initializers = [numpy_helper.from_array(value, name) for name, value in tensors.items()]
    graph = helper.make_graph(
        nodes,
        "conv_bn_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def matmul_relu(*, batch: int | str = 1, seed: int = 0) -> onnx.ModelProto:
    """``y = Relu(x @ w)`` with x (batch, 64), w (64, 32); ``batch`` may be a symbolic name."""
    w = _rng(seed).standard_normal((64, 32)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
            helper.make_node("Relu", ["m"], ["y"], name="relu"),
        ],
        "matmul_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 32])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def with_unsupported_op(op_type: str = "NotARealOp", domain: str = "") -> onnx.ModelProto:
    """``x -> Relu -> <op_type> -> y``: an operator TVM cannot import, in node ``odd_node``."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node(op_type, ["r"], ["y"], name="odd_node", domain=domain),
    ]
    graph = helper.make_graph(
        nodes,
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    opsets = [helper.make_opsetid("", OPSET)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets)
