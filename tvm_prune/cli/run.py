"""``tvm-prune run model.tar [--inputs in.npz] [--outputs out.npz] ...``"""

from __future__ import annotations

import argparse
import logging

from . import arguments
from . import help as texts

FILL_MODES = ("zeros", "ones", "random")

logger = logging.getLogger("tvm_prune")


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("run", help=texts.RUN, description=texts.RUN)
    parser.add_argument("package", help=texts.RUN_PACKAGE)
    parser.add_argument("--inputs", help=texts.INPUTS)
    parser.add_argument("--outputs", help=texts.OUTPUTS)
    parser.add_argument("--fill-mode", choices=FILL_MODES, default="random", help=texts.FILL_MODE)
    parser.add_argument("--print-time", action="store_true", help=texts.PRINT_TIME)
    parser.add_argument("--repeat", type=arguments.positive_int, default=10, help=texts.REPEAT)
    parser.add_argument("--number", type=arguments.positive_int, default=1, help=texts.NUMBER)
    parser.add_argument(
        "--print-top", type=arguments.positive_int, metavar="N", help=texts.PRINT_TOP
    )
    parser.add_argument("--device", choices=("cpu",), default="cpu", help=texts.DEVICE)
    parser.add_argument(
        "--min-repeat-ms", type=arguments.non_negative_int, default=0, help=texts.MIN_REPEAT_MS
    )
    parser.add_argument("--compare", metavar="REFERENCE.npz", help=texts.COMPARE)
    parser.add_argument(
        "--tolerance",
        type=arguments.non_negative_float,
        default=1e-4,
        help=texts.COMPARE_TOLERANCE,
    )
    arguments.add_rpc_options(parser, tracker_help=texts.RPC_TRACKER)
    return parser


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..package import Package
    from ..package.archive import write_atomic
    from ..package.io import fill_inputs, load_npz
    from ..rpc import open_session

    package = Package.load(args.package)
    given = load_npz(args.inputs) if args.inputs else {}
    inputs = fill_inputs(package.inputs, given, args.fill_mode)
    if args.inputs and len(inputs) > len(given):
        generated = [name for name in inputs if name not in given]
        logger.warning(
            "%s has no array for %s: filled with %s",
            args.inputs,
            ", ".join(generated),
            args.fill_mode,
        )
    rpc = arguments.rpc_config(args)
    if rpc is None:
        runner = package.runner()
    else:
        logger.info("running on %s", rpc.describe())
        runner = package.runner(session=open_session(rpc))
    outputs = runner.run(inputs)
    if args.compare:
        _compare(outputs, load_npz(args.compare), args.tolerance)

    if args.outputs:
        write_atomic(args.outputs, lambda handle: np.savez(handle, **outputs))
    if args.print_top:
        first = package.outputs[0].name
        values = outputs[first].reshape(-1)
        top = np.argsort(-values, kind="stable")[: args.print_top]
        print(f"top {len(top)} of output '{first}':")
        for index in top:
            print(f"  {int(index):>8}  {float(values[index]):.6g}")
    if args.print_time:
        result = runner.benchmark(
            inputs, repeat=args.repeat, number=args.number, min_repeat_ms=args.min_repeat_ms
        )
        print(f"execution time over {result.repeat} x {result.number} runs (ms):")
        print("  mean      median    std       min       max")
        print(
            f"  {result.mean_ms:<9.3f} {result.median_ms:<9.3f} {result.std_ms:<9.3f} "
            f"{result.min_ms:<9.3f} {result.max_ms:<9.3f}"
        )
    if not (args.outputs or args.print_top or args.print_time):
        with np.printoptions(threshold=20, edgeitems=3, precision=5):
            for name, value in outputs.items():
                print(f"{name} {list(value.shape)} {value.dtype}:\n{value}")
    return 0


def _compare(outputs, reference, tolerance: float) -> None:
    from ..errors import RunError
    from ..testing.ort import relative_error

    missing = sorted(set(outputs) - set(reference))
    if missing:
        raise RunError(f"--compare: the reference has no output(s) {', '.join(missing)}")
    errors = {name: relative_error(outputs[name], reference[name]) for name in outputs}
    for name, error in errors.items():
        print(f"output '{name}': max error {error:.3g} of the reference's scale")
    bad = [name for name, error in errors.items() if not error <= tolerance]
    if bad:
        raise RunError(
            f"output(s) {', '.join(bad)} differ from the reference by more than {tolerance}"
        )
