"""Helpers for tvm-prune's tests and benchmarks: ONNX builders, ONNX Runtime references,
locations of third-party models that ship inside packages."""
