"""The package format: ``model.tar`` = ``mod.so`` + ``metadata.json``.

In: a compiled Relax executable and what describes it. Out: a checked, atomically written tar
that :meth:`Package.load` reads back (checksums verified, unsafe members refused) and
:meth:`Package.run` executes.
"""

from .build import compile_model
from .metadata import SCHEMA_VERSION, PackageMetadata
from .package import Package

__all__ = ["SCHEMA_VERSION", "Package", "PackageMetadata", "compile_model"]
