"""The Mali tests run the generated OpenCL on PoCL through pyopencl; without them, skip."""

from __future__ import annotations

import pytest


def _opencl_device() -> str | None:
    try:
        import pyopencl as cl

        return next((str(d.name) for p in cl.get_platforms() for d in p.get_devices()), None)
    except Exception:
        return None


if _opencl_device() is None:
    pytest.skip("no OpenCL device (scripts/setup installs PoCL)", allow_module_level=True)
