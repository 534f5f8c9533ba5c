"""``tvm-prune compile --target mali-g76``: an aarch64 library that carries the OpenCL C."""

from __future__ import annotations

import pytest

import tvm_prune
from tvm_prune.cli.main import main
from tvm_prune.package.package import Package
from tvm_prune.package.runner import LIBRARY_MEMBER

from ..conftest import DIGITS


def test_compile_mali_package_carries_the_opencl_source(tmp_path, digits_mali):
    onnx_path = DIGITS / "digits_cnn.onnx"
    out = tmp_path / "digits_mali.tar"
    assert main(["compile", str(onnx_path), "--target", "mali-g76", "-o", str(out)]) == 0
    package = Package.load(out)
    library = package.members[LIBRARY_MEMBER]
    assert library[:4] == b"\x7fELF" and library[18] == 183  # e_machine: EM_AARCH64
    # The same build's OpenCL C, every kernel of it, is embedded verbatim in the library
    # (TVM's OpenCL runtime on the device compiles it when the module loads).
    source = digits_mali[1].source
    assert source.count("__kernel void") >= 13
    assert source.encode() in library
    schedule = package.metadata.compile["schedule"]
    assert set(schedule["scheduled"]) <= {
        "mali.Conv2d",
        "mali.Dense",
        "mali.Pool",
        "mali.Elementwise",
    }, schedule
    with pytest.raises(tvm_prune.errors.TvmPruneError, match="opencl"):
        package.run({"input": None})
