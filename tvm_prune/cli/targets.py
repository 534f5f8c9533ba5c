"""``tvm-prune targets [NAME]``: the presets in ``targets/``."""

from __future__ import annotations

import argparse
import json

from . import help as texts


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("targets", help=texts.TARGETS, description=texts.TARGETS)
    parser.add_argument("name", nargs="?", help=texts.TARGETS_NAME)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..target import list_presets, load_preset

    if args.name:
        print(json.dumps(load_preset(args.name).to_dict(), indent=2))
        return 0
    rows = [("NAME", "KIND", "TRIPLE / DEVICE", "CROSS COMPILER", "DESCRIPTION")]
    for name in list_presets():
        preset = load_preset(name)
        attrs = preset.target.attrs
        where = attrs.get("device") or preset.host_triple
        rows.append(
            (
                name,
                str(preset.target.kind.name),
                str(where),
                preset.cross_compiler or "-",
                preset.description,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 0
