"""ONNX import: weights kept as parameters, every error named before conversion."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tvm_prune.errors import InputShapeError, ModelLoadError, UnsupportedOpError
from tvm_prune.frontend import load_onnx
from tvm_prune.testing import models
from tvm_prune.testing.models import onnx_data_dir

WEIGHT_NAMES = {"w1", "b1", "gamma", "beta", "mean", "var", "w2", "fc_w", "fc_b"}


@pytest.mark.parametrize("as_constants", [False, True], ids=["initializers", "constant-nodes"])
def test_weights_become_named_parameters(tmp_path, as_constants):
    """Initializers and Constant-node weights (PaddlePaddle style) both end up in params."""
    proto = models.conv_bn_relu(weights_as_constants=as_constants)
    model = load_onnx(models.save(proto, tmp_path / "m.onnx"))
    assert set(model.params) == WEIGHT_NAMES
    main = model.mod["main"]
    assert [p.name for p in main.params[1:]] == list(model.params)
    assert int(main.attrs["num_input"]) == 1
    expected = {
        t.name: onnx.numpy_helper.to_array(t) for t in models.conv_bn_relu().graph.initializer
    }
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, expected[name])
    assert [s.name for s in model.inputs] == ["x"]
    assert model.outputs[0].shape == (1, 10)


def test_initializers_listed_as_inputs_are_weights():
    """Old exporters (IR < 4) list weights among graph inputs; they are not model inputs."""
    model = load_onnx(onnx_data_dir() / "light" / "light_squeezenet.onnx")
    assert [s.name for s in model.inputs] == ["data_0"]
    assert model.inputs[0].shape == (1, 3, 224, 224)


def test_shape_arguments_stay_constants(tmp_path):
    """A Reshape's shape initializer is folded, not turned into a parameter."""
    proto = models.matmul_relu()
    shape = onnx.numpy_helper.from_array(np.array([1, 32], np.int64), "shape")
    proto.graph.initializer.append(shape)
    proto.graph.node[-1].output[0] = "r"
    proto.graph.node.append(onnx.helper.make_node("Reshape", ["r", "shape"], ["y"]))
    model = load_onnx(models.save(proto, tmp_path / "m.onnx"))
    assert set(model.params) == {"w"}


def test_dynamic_input_needs_a_shape(tmp_path):
    path = models.save(models.matmul_relu(batch="N"), tmp_path / "dyn.onnx")
    with pytest.raises(InputShapeError, match=r"input 'x' has dynamic shape \['\?', 64\]"):
        load_onnx(path)
    model = load_onnx(path, input_shapes={"x": (4, 64)})
    assert model.inputs[0].shape == (4, 64)
    assert model.outputs[0].shape == (4, 32)


def test_input_shapes_for_unknown_input_or_wrong_rank(tmp_path):
    path = models.save(models.matmul_relu(), tmp_path / "m.onnx")
    with pytest.raises(InputShapeError, match="unknown input.*nope.*inputs are: x"):
        load_onnx(path, input_shapes={"nope": (1, 64)})
    with pytest.raises(InputShapeError, match="input 'x' has rank 2"):
        load_onnx(path, input_shapes={"x": (1, 64, 1)})


@pytest.mark.parametrize("domain", ["", "com.example"])
def test_unsupported_op_is_named(tmp_path, domain):
    path = models.save(models.with_unsupported_op("FancyOp", domain), tmp_path / "u.onnx")
    op = f"{domain}.FancyOp" if domain else "FancyOp"
    with pytest.raises(
        UnsupportedOpError, match=rf"unsupported ONNX operator\(s\): {op} \(node odd_node\)"
    ):
        load_onnx(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_onnx(tmp_path / "absent.onnx")


def test_not_onnx(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\xffthis is not protobuf" * 10)
    with pytest.raises(ModelLoadError, match="junk.onnx: not a readable ONNX model"):
        load_onnx(path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_onnx(tmp_path, conv_model, keep):
    data = conv_model.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelLoadError, match="truncated.onnx: (not a readable|invalid) ONNX model"):
        load_onnx(path)
