"""The Mali tests run the generated OpenCL on PoCL through pyopencl; without them, skip."""

from __future__ import annotations

import pytest


def _opencl_device() -> str | None:
    try:
        import pyopencl as cl
    except ImportError:
        return None
    try:
        return next((str(d.name) for p in cl.get_platforms() for d in p.get_devices()), None)
    except cl.Error:  # no ICD installed: pyopencl raises PLATFORM_NOT_FOUND_KHR
        return None


if _opencl_device() is None:
    pytest.skip("no OpenCL device (scripts/setup installs PoCL)", allow_module_level=True)


@pytest.fixture(scope="session")
def digits_mali():
    """The bundled digits CNN and its mali-g76 build with the Mali rules (and the report)."""
    import tvm_prune
    from tvm_prune.testing.opencl import compile_for_opencl

    from ..conftest import DIGITS

    model = tvm_prune.load_onnx(DIGITS / "digits_cnn.onnx")
    report: dict = {}
    return model, compile_for_opencl(model, "mali-g76", report=report), report
