"""``tvm-prune prune MODEL --method M (--sparsity S | --tolerance T | --macs F) [...]``"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..prune import api
from ..prune.apply import COMPENSATIONS
from ..prune.metrics import METRICS
from . import arguments
from . import help as texts

logger = logging.getLogger("tvm_prune")

# Weight-pruning methods, and structural channel removal.
METHODS = (*api.METHODS, "channel")


# Options only one kind of pruning reads, with their defaults (the value that means "not
# given"; the parser's defaults come from here).
WEIGHT_ONLY = {
    "sparsity": None,
    "metric": None,
    "accuracy": None,
    "compensation": None,
    "raw_weights": False,
}
CHANNEL_ONLY = {"macs": None, "importance": "l1", "round_channels": 1, "fine_tune": 0}


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("prune", help=texts.PRUNE, description=texts.PRUNE)
    parser.add_argument("model", help=texts.PRUNE_MODEL)
    parser.add_argument("--input-shapes", type=arguments.input_shapes, help=texts.INPUT_SHAPES)
    add_prune_options(parser, flag="--method", required=True)
    parser.add_argument("-o", "--output", help=texts.PRUNE_OUTPUT)
    return parser


def add_prune_options(parser: argparse.ArgumentParser, *, flag: str, required: bool) -> None:
    """The pruning options shared by ``prune`` and ``compile --prune``."""
    help_text = texts.PRUNE_METHOD if flag == "--method" else texts.COMPILE_PRUNE
    parser.add_argument(flag, dest="method", choices=METHODS, required=required, help=help_text)
    parser.add_argument("--sparsity", type=arguments.fraction, help=texts.SPARSITY)
    parser.add_argument("--tolerance", type=arguments.non_negative_float, help=texts.TOLERANCE)
    parser.add_argument("--metric", choices=list(METRICS), help=texts.METRIC)
    parser.add_argument("--calib", help=texts.CALIB)
    parser.add_argument("--accuracy", metavar="FILE.py:FUNCTION", help=texts.ACCURACY)
    parser.add_argument("--report", help=texts.REPORT)
    parser.add_argument("--plot", help=texts.PLOT)
    parser.add_argument("--compensation", choices=COMPENSATIONS, help=texts.COMPENSATION)
    parser.add_argument("--raw-weights", action="store_true", help=texts.RAW_WEIGHTS)
    parser.add_argument("--macs", type=arguments.fraction, help=texts.MACS)
    parser.add_argument(
        "--importance",
        choices=api.IMPORTANCES,
        default=CHANNEL_ONLY["importance"],
        help=texts.IMPORTANCE,
    )
    parser.add_argument(
        "--round-channels",
        type=arguments.positive_int,
        default=CHANNEL_ONLY["round_channels"],
        help=texts.ROUND_CHANNELS,
    )
    parser.add_argument(
        "--fine-tune",
        type=arguments.non_negative_int,
        default=CHANNEL_ONLY["fine_tune"],
        help=texts.FINE_TUNE,
    )


def prune_from_args(model, args: argparse.Namespace):
    """Run the pruning the options ask for; log the table, write report and plots."""
    from ..package.archive import check_writable
    from ..prune.api import prune_model
    from ..prune.data import load_calibration

    _refuse_options_of_the_other_kind(args)
    if args.report:
        check_writable(Path(args.report))
    data = load_calibration(args.calib, model) if args.calib else None
    if args.method == "channel":
        return _prune_channels(model, args, data)
    accuracy_fn = load_accuracy_fn(args.accuracy) if args.accuracy else None
    logger.info(
        "pruning %s: method %s, sparsity %s, tolerance %s, metric %s, data %s",
        model.source,
        args.method,
        args.sparsity,
        args.tolerance,
        args.metric or "default",
        args.calib or "generated",
    )
    pruned, plan = prune_model(
        model,
        method=args.method,
        sparsity=args.sparsity,
        tolerance=args.tolerance,
        metric=args.metric,
        data=data,
        accuracy_fn=accuracy_fn,
        effective=not args.raw_weights,
        compensation=args.compensation,
        progress=True,
    )
    print(plan.table())
    from ..prune.plots import write_plots

    _write_outputs(args, pruned, lambda folder: write_plots(plan, folder))
    return pruned, plan


def _refuse_options_of_the_other_kind(args: argparse.Namespace) -> None:
    """An option the chosen method would ignore is refused rather than silently dropped."""
    from ..prune.api import PruneError

    other = WEIGHT_ONLY if args.method == "channel" else CHANNEL_ONLY
    given = [name for name, unset in other.items() if getattr(args, name) != unset]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        kind = "weight pruning" if args.method == "channel" else "channel pruning"
        raise PruneError(f"{flags}: for {kind} only, not for method {args.method}")


def _prune_channels(model, args: argparse.Namespace, data):
    from ..prune.api import PruneError, channel_table, prune_model_channels

    if args.macs is None:
        raise PruneError("method channel needs --macs (fraction of the MACs to keep)")
    logger.info(
        "pruning %s: channels to %s of the MACs, importance %s, data %s",
        model.source,
        args.macs,
        args.importance,
        args.calib or "none",
    )
    pruned, report = prune_model_channels(
        model,
        macs=args.macs,
        importance=args.importance,
        data=data,
        budget=0.01 if args.tolerance is None else args.tolerance,
        fine_tune_steps=args.fine_tune,
        multiple=args.round_channels,
    )
    print(channel_table(report))
    from ..prune.plots import write_channel_plots

    _write_outputs(args, pruned, lambda folder: write_channel_plots(report, folder))
    return pruned, report


def _write_outputs(args: argparse.Namespace, pruned, write_plots) -> None:
    """The report JSON (``--report``) and the plots (``--plot``, via ``write_plots(folder)``)."""
    if args.report:
        _write_report(pruned.transforms[-1].report, args.report)
    if args.plot:
        for path in write_plots(Path(args.plot)):
            logger.info("wrote %s", path)


def _write_report(report, path: str) -> None:
    from ..package.archive import write_atomic

    text = json.dumps(report, indent=2, default=float).encode()
    write_atomic(Path(path), lambda handle: handle.write(text))
    logger.info("wrote %s", path)


def run(args: argparse.Namespace) -> int:
    from ..frontend import load_onnx
    from ..package.archive import check_writable
    from ..prune.onnx_export import export_onnx

    if args.output:
        check_writable(Path(args.output))
    model = load_onnx(args.model, input_shapes=args.input_shapes)
    pruned, _ = prune_from_args(model, args)
    if args.output:
        export_onnx(pruned, args.output)
        logger.info("wrote %s", args.output)
    return 0


def load_accuracy_fn(spec: str):
    """The user's accuracy function from ``FILE.py:FUNCTION``.

    It is called with the model's outputs on all calibration samples (a list with one array per
    output, samples stacked on axis 0, in the order of ``--calib``) and returns the task
    accuracy in [0, 1]; it replaces the top-1 accuracy computed from the npz's ``label``.
    """
    import importlib.util

    from ..prune.api import PruneError

    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise PruneError(f"--accuracy '{spec}': expected FILE.py:FUNCTION")
    if not Path(path).is_file():
        raise PruneError(f"--accuracy: no such file {path}")
    module_spec = importlib.util.spec_from_file_location(f"tvm_prune_user_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise PruneError(f"--accuracy: importing {path} failed: {_describe(exc)}") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise PruneError(f"--accuracy: {path} has no function '{name}'")

    def accuracy(outputs) -> float:
        try:
            value = float(function(outputs))
        except Exception as exc:
            raise PruneError(f"--accuracy: {spec} raised {_describe(exc)}") from exc
        if not 0.0 <= value <= 1.0:
            raise PruneError(f"--accuracy: {spec} returned {value}, not an accuracy in [0, 1]")
        return value

    return accuracy


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
