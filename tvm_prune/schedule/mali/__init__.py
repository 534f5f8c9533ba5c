"""Mali GPU (OpenCL) schedule rules: buffers, float4 accesses, no local memory."""

from __future__ import annotations


def rules() -> tuple:
    """The Mali rules, highest priority first (dlight's generic GPU rules follow them)."""
    return ()
