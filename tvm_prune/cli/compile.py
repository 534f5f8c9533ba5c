"""``tvm-prune compile MODEL [--target T] [-o model.tar] ...``"""

from __future__ import annotations

import argparse
import logging

from . import arguments
from . import help as texts
from .prune import add_prune_options

logger = logging.getLogger("tvm_prune")


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("compile", help=texts.COMPILE, description=texts.COMPILE)
    parser.add_argument("model", help=texts.COMPILE_MODEL)
    parser.add_argument("--target", default="host", help=texts.TARGET)
    parser.add_argument("-o", "--output", default="model.tar", help=texts.OUTPUT_PACKAGE)
    parser.add_argument("--input-shapes", type=arguments.input_shapes, help=texts.INPUT_SHAPES)
    parser.add_argument("--cross-compiler", help=texts.CROSS_COMPILER)
    parser.add_argument(
        "--cross-compiler-options",
        type=arguments.compiler_options,
        help=texts.CROSS_COMPILER_OPTIONS,
    )
    parser.add_argument("--tuning-records", help=texts.TUNING_RECORDS)
    parser.add_argument(
        "-O",
        "--opt-level",
        type=int,
        choices=range(4),
        default=3,
        metavar="{0-3}",
        help=texts.OPT_LEVEL,
    )
    parser.add_argument(
        "--disabled-pass",
        type=arguments.pass_names,
        action="extend",
        default=[],
        metavar="NAME",
        help=texts.DISABLED_PASS,
    )
    prune_options = parser.add_argument_group("pruning (as for `tvm-prune prune`)")
    add_prune_options(prune_options, flag="--prune", required=False)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..package import compile_model
    from ..target import resolve_target
    from ..target.presets import preset_with_cross_compiler

    preset = preset_with_cross_compiler(
        resolve_target(args.target), args.cross_compiler, args.cross_compiler_options
    )
    logger.info(
        "compiling %s for %s, cross compiler: %s, opt level %d%s",
        args.model,
        preset.describe(),
        preset.cross_compiler or "this machine's",
        args.opt_level,
        f", disabled passes: {', '.join(args.disabled_pass)}" if args.disabled_pass else "",
    )
    model = args.model
    if args.method is not None:
        from ..frontend import load_onnx
        from .prune import prune_from_args

        model, _ = prune_from_args(load_onnx(args.model, input_shapes=args.input_shapes), args)
    package = compile_model(
        model,
        target=preset,
        output=args.output,
        input_shapes=args.input_shapes,
        opt_level=args.opt_level,
        disabled_passes=args.disabled_pass,
        tuning_records=args.tuning_records,
    )
    seconds = package.metadata.compile["seconds"]
    logger.info(
        "wrote %s (%.1f s: %s)",
        args.output,
        sum(seconds.values()),
        ", ".join(f"{phase} {value:.1f} s" for phase, value in seconds.items()),
    )
    for line in rewrite_summary(package.metadata.transforms):
        logger.info("%s", line)
    return 0


def rewrite_summary(transforms) -> list[str]:
    """One line per graph rewrite that saw something: how many it rewrote, and for the
    grouped-conv rewrites the MACs before/after and the channel permutations left."""
    lines = []
    for transform in transforms:
        entries = transform["report"].get("rewrites")
        if not entries:
            continue
        done = [e for e in entries if e.get("rewritten")]
        line = f"{transform['name']}: {len(done)} of {len(entries)} {entries[0]['op']} rewritten"
        if any("macs_before" in e for e in done):
            before = sum(e["macs_before"] for e in done)
            after = sum(e["macs_after"] for e in done)
            explicit = sum(
                e.get(side) == "explicit"
                for e in done
                for side in ("input_permutation", "output_permutation")
            )
            line += f" (MACs {before:,} -> {after:,}, {explicit} channel permutations left)"
        if any("form" in e for e in done):
            forms = sorted({e["form"] for e in done})
            line += f" (as {', '.join(forms)})"
        lines.append(line)
    return lines
