"""Hexagon-only schedule rules; everything else on HVX comes from the CPU rule family."""

from .vrmpy_dense import VrmpyDense

__all__ = ["VrmpyDense"]
