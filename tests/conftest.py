"""Shared fixtures: small ONNX models written to a temporary folder once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tvm
from tvm import relax

from tvm_prune.testing import models

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def conv_model(model_dir) -> Path:
    return models.save(models.conv_bn_relu(), model_dir / "conv_bn_relu.onnx")


@pytest.fixture(scope="session")
def matmul_model(model_dir) -> Path:
    return models.save(models.matmul_relu(), model_dir / "matmul_relu.onnx")


@pytest.fixture(scope="session")
def matmul_package(matmul_model, tmp_path_factory):
    """``matmul_model`` compiled for the host once; tests must not modify the file."""
    import tvm_prune

    out = tmp_path_factory.mktemp("packages") / "matmul.tar"
    return tvm_prune.compile(matmul_model, target="host", output=out)


PPOCR_DET_SHAPES = {"x": (1, 3, 320, 320)}


@pytest.fixture(scope="session")
def ppocr_det_host_package(tmp_path_factory):
    """PP-OCRv4 det (the rapidocr wheel's model) at 320x320 compiled for the host once."""
    import tvm_prune

    out = tmp_path_factory.mktemp("packages") / "ppocr_det.tar"
    model = tvm_prune.load_onnx(models.ppocr_det_model(), input_shapes=PPOCR_DET_SHAPES)
    return tvm_prune.compile(model, target="host", output=out)


def relax_op_names(mod: tvm.IRModule) -> set[str]:
    """Names of the Relax operators ``mod["main"]`` calls."""
    names: set[str] = set()
    relax.analysis.post_order_visit(
        mod["main"],
        lambda e: (
            names.add(e.op.name)
            if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op)
            else None
        ),
    )
    return names


def skip_unless_all_models(what: str) -> None:
    """Skip a test that compiles a big model for minutes unless ``TVM_PRUNE_ALL_MODELS`` is
    set: the suite must stay under its 20-minute budget on 2 cores. ``what`` says why."""
    if not os.environ.get("TVM_PRUNE_ALL_MODELS"):
        pytest.skip(f"{what}; set TVM_PRUNE_ALL_MODELS=1")
