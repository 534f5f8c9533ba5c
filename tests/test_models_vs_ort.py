"""Whole models compiled to packages and run, compared with ONNX Runtime.

Tolerance everywhere: max |tvm - ort| <= 1e-4 x max |ort|, per output (``relative_error``).
"""

from __future__ import annotations

import pytest

import tvm_prune
from tvm_prune.frontend import load_onnx
from tvm_prune.testing import models
from tvm_prune.testing.ort import assert_outputs_close, random_inputs, run_ort

from .conftest import PPOCR_DET_SHAPES, skip_unless_all_models

REL_TOL = 1e-4
# VGG-19 and ZFNet: 550 MB and 350 MB of weights, 1-2 min each to randomise, compile, compress
# and run; DenseNet-121: 120 convs of as many shapes, 1-1.5 min to compile. None has an operator
# that AlexNet (LRN, large kernels), ResNet-50, Inception (3x3 convs, concats, batch norms) and
# SqueezeNet lack.
HEAVY = {"light_vgg19", "light_zfnet512", "light_densenet121"}


@pytest.mark.parametrize("name", models.light_model_names())
def test_light_model_imports(name):
    """The shipped light models import (their weights come from ConstantOfShape)."""
    model = load_onnx(models.onnx_data_dir() / "light" / f"{name}.onnx")
    assert model.inputs[0].shape == (1, 3, 224, 224)


@pytest.mark.slow
@pytest.mark.parametrize("name", models.light_model_names())
def test_light_model_with_random_weights(name, tmp_path):
    if name in HEAVY:
        skip_unless_all_models("the same operators as the lighter models, minutes to compile")
    path = models.save(models.randomized_light_model(name), tmp_path / f"{name}.onnx")
    package = tvm_prune.compile(path, target="host", output=tmp_path / f"{name}.tar")
    inputs = random_inputs(package.inputs)
    outputs = tvm_prune.Package.load(package.path).run(inputs)
    assert len(outputs) == 2 or name == "light_densenet121"  # probabilities + logits
    assert_outputs_close(outputs, run_ort(path, inputs), rel_tol=REL_TOL)


@pytest.mark.slow
def test_mobilenet_v2_shaped(tmp_path):
    """The benchmark's MobileNetV2-shaped network at 224 x 224: every pointwise path (channel
    vectors, flattened pixels with input-channel blocks, few-channel rows), depthwise stride 1
    and 2, ReLU6 and residual epilogues, the global pool and the matrix-vector dense layer."""
    from tvm_prune.testing import networks

    path = models.save(networks.mobilenet_v2_like(), tmp_path / "mobilenet_v2_like.onnx")
    package = tvm_prune.compile(path, target="host", output=tmp_path / "mv2.tar")
    assert package.metadata.compile["schedule"]["fallback"] == 0
    inputs = random_inputs(package.inputs)
    assert_outputs_close(package.run(inputs), run_ort(path, inputs), rel_tol=REL_TOL)


@pytest.mark.parametrize("case", models.pytorch_converted_cases(contains=("Conv",)))
def test_pytorch_converted_conv(case, tmp_path):
    path, inputs, expected = models.pytorch_converted_case(case)
    package = tvm_prune.compile(path, target="host", output=tmp_path / "case.tar")
    outputs = package.run(inputs)
    reference = run_ort(path, inputs)
    assert_outputs_close(outputs, reference, rel_tol=REL_TOL)
    shipped = dict(zip(reference, expected, strict=True))
    assert_outputs_close(outputs, shipped, rel_tol=REL_TOL)


@pytest.mark.slow
def test_ppocr_det(ppocr_det_host_package):
    """PP-OCRv4 det (weights in Constant nodes, dynamic input fixed to 320x320) on a text page.

    Random noise saturates the sigmoid output near 0, where float noise dominates; a synthetic
    text page gives real detections, so the check is on a meaningful output.
    """
    path = models.ppocr_det_model()
    model = load_onnx(path, input_shapes=PPOCR_DET_SHAPES)
    assert len(model.params) > 100  # weights stayed parameters, though stored as Constant nodes
    image = models.document_image(320, 320)
    outputs = ppocr_det_host_package.run({"x": image})
    reference = run_ort(path, {"x": image})
    (name,) = reference
    assert (reference[name] > 0.3).mean() > 0.02, "the page should contain detected text"
    assert_outputs_close(outputs, reference, rel_tol=REL_TOL)
