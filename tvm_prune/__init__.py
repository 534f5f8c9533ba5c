"""tvm-prune: ONNX models to small, fast libraries for edge devices with Apache TVM.

The public verbs:

* :func:`load_onnx` -- ONNX file to :class:`Model` (weights kept as parameters);
* :func:`prune_model` -- model and calibration data to a pruned model and its plan;
* :func:`compile` -- model or ONNX file to a :class:`Package` (``model.tar``) for a target preset;
* :meth:`Package.load` / :meth:`Package.run` -- read a package back and run it.
"""

__version__ = "0.1.0"

from .frontend import load_onnx
from .model import Model, TensorSpec
from .package import Package
from .package import compile_model as compile
from .prune.api import prune_model

__all__ = ["Model", "Package", "TensorSpec", "__version__", "compile", "load_onnx", "prune_model"]
