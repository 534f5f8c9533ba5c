"""Model importers: a file in, a :class:`tvm_prune.model.Model` out."""

from .onnx import load_onnx

__all__ = ["load_onnx"]
