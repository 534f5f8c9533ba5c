"""Errors a user can act on.

Every error raised for bad input is a :class:`TvmPruneError`. Its message is one line that names
the thing at fault (file, op, input, target, package member); the CLI prints it and exits with
``exit_code``. Anything else escaping the CLI is a bug in tvm-prune.
"""


class TvmPruneError(Exception):
    """Bad input or an unsupported request; the message says which and where."""

    exit_code = 2


class ModelLoadError(TvmPruneError):
    """The model file is missing, unreadable, not ONNX or not valid ONNX."""


class UnsupportedOpError(TvmPruneError):
    """The model uses operators the importer cannot convert."""


class InputShapeError(TvmPruneError):
    """Input shapes are dynamic and not given, or given for unknown inputs."""


class TargetError(TvmPruneError):
    """A target preset, JSON target or target string that cannot be resolved."""


class CompileError(TvmPruneError):
    """Compilation or export failed (for example a missing cross compiler)."""


class PackageError(TvmPruneError):
    """A package that is malformed, tampered with or unsafe to extract."""


class RunError(TvmPruneError):
    """Inputs that do not match the package, or a package that cannot run on this device."""
