"""``tvm-prune tune MODEL --target PRESET --trials N -o records/ [--rpc-tracker H:P ...]``"""

from __future__ import annotations

import argparse
import logging

from . import arguments
from . import help as texts

logger = logging.getLogger("tvm_prune")


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("tune", help=texts.TUNE, description=texts.TUNE)
    parser.add_argument("model", help=texts.COMPILE_MODEL)
    parser.add_argument("--target", default="host", help=texts.TARGET)
    parser.add_argument(
        "--trials", type=arguments.positive_int, required=True, help=texts.TUNE_TRIALS
    )
    parser.add_argument("-o", "--output", required=True, help=texts.TUNE_OUTPUT)
    parser.add_argument("--input-shapes", type=arguments.input_shapes, help=texts.INPUT_SHAPES)
    arguments.add_rpc_options(parser, tracker_help=texts.TUNE_RPC_TRACKER)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..tuning import tune_model

    rpc = arguments.rpc_config(args)
    report = tune_model(
        args.model,
        target=args.target,
        trials=args.trials,
        output=args.output,
        input_shapes=args.input_shapes,
        rpc=rpc,
    )
    print(f"{'kernel':<44} {'trials':>6} {'new':>5} {'best us':>10} {'rules us':>10}")
    for kernel in report.kernels:
        best, rule = (
            f"{ms * 1e3:.2f}" if ms is not None else "-" for ms in (kernel.best_ms, kernel.rule_ms)
        )
        name = kernel.name[:44]
        print(f"{name:<44} {kernel.trials:>6} {kernel.new_trials:>5} {best:>10} {rule:>10}")
    logger.info("records in %s", report.path)
    return 0
