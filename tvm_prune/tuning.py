"""``tvm-prune tune``: MetaSchedule search with the XGBoost cost model into a records folder.

The model is rewritten, legalised and fused exactly as ``compile --tuning-records`` does
(:func:`tvm_prune.tuning_records.tuning_passes`), so every kernel tuned here is found again at
compile time. Kernels are tuned one after the other, each with a budget of ``trials``
measurements; on the host the LocalRunner measures them, on a device the RPCRunner (the library
is exported with the preset's cross compiler and uploaded).

Resuming. The folder is MetaSchedule's JSON database, appended one line per record as trials
finish. Before it is opened, lines that do not parse are dropped (an interrupt, Ctrl-C or kill
mid-write, tears the last line of either file), the files being rewritten atomically. Then,
per kernel, the records already in the database count as trials done, and only the remainder is
searched: a re-run with the same folder keeps every record and never exceeds ``trials`` per
kernel.

Never worse than the zero-tuning rules. Before a kernel's search starts, the schedule our rules
give it (:func:`tvm_prune.schedule.rules_for`) is built and measured with the same builder and
runner and committed as the kernel's first record, counted as one of its trials. The database
answers a kernel with its fastest record, so ``compile --tuning-records`` applies a tuned
schedule only where one measured faster than the rule's, and otherwise the rule's own schedule
(replayed from its trace). Kernels no rule takes start from TVM's naive loops as usual.
"""

from __future__ import annotations

import functools
import inspect
import json
import linecache
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm_ffi import structural_hash

from .errors import CompileError, TvmPruneError, tvm_error_line
from .frontend import load_onnx
from .model import Model
from .package.archive import write_atomic
from .package.build import cross_compiler_of, export_function, rewritten_module
from .package.threads import use_all_cores
from .rpc import RpcConfig, open_session
from .schedule import first_match, rules_for
from .target import TargetPreset, resolve_target
from .tuning_records import DATABASE_FILES, SCHEDULED_ATTR, tuning_passes

logger = logging.getLogger(__name__)

# LocalBuilder's default of 30 s is too short for large fused kernels on a busy machine.
BUILD_TIMEOUT_SEC = 300
RUN_TIMEOUT_SEC = 60
TRIALS_PER_ITERATION = 32


def _search_strategy() -> ms.search_strategy.EvolutionarySearch:
    # TVM's defaults (population 512, 4 genetic rounds) are sized for thousands of trials;
    # budgets here are tens per kernel on a few cores, where they spend minutes per batch
    # ranking candidates that are never measured.
    return ms.search_strategy.EvolutionarySearch(
        population_size=128, init_min_unmeasured=32, genetic_num_iters=2
    )


@dataclass
class KernelReport:
    """One kernel: trials in the database (the rules' schedule counting as one), how many of
    them this run measured, the best mean latency and the rules' (when measured in this run)."""

    name: str
    trials: int
    new_trials: int
    best_ms: float | None
    rule_ms: float | None


@dataclass
class TuneReport:
    path: str
    trials_per_kernel: int
    kernels: list[KernelReport] = field(default_factory=list)


def tune_model(
    model: Model | str | Path,
    *,
    target: TargetPreset | str | Mapping = "host",
    trials: int,
    output: str | Path,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    rpc: RpcConfig | None = None,
) -> TuneReport:
    """Tune every kernel of ``model`` for ``target`` with ``trials`` measurements each.

    Records go to the folder ``output`` (created; resumed if it holds a database). ``rpc``
    measures on that device instead of this machine.
    """
    if trials < 1:
        raise CompileError(f"trials must be at least 1, not {trials}")
    preset = resolve_target(target)
    if rpc is None and preset.cross_compiler is not None:
        raise CompileError(
            f"target {preset.name} is cross-compiled: tune it on its device over RPC "
            "(--rpc-tracker HOST:PORT --rpc-key KEY)"
        )
    cores = preset.target.attrs.get("num-cores")
    if rpc is not None:
        # Fail now with one line, not after minutes of search in every runner worker.
        session = open_session(rpc)
        cores = cores or int(session.get_function("runtime.NumThreads")())
    # MetaSchedule's parallelisation rules need the core count in the target.
    search_target = tvm.target.Target({**preset.target.export(), "num-cores": cores or _cores()})
    if not isinstance(model, Model):
        model = load_onnx(model, input_shapes=input_shapes)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise TvmPruneError(f"{output}: is a file; tune writes its records into a folder")
    output.mkdir(parents=True, exist_ok=True)
    repair_database(output)

    with preset.target, tvm.transform.PassContext(opt_level=3):
        mod, _ = rewritten_module(model, preset)
        mod = tvm.transform.Sequential(tuning_passes(preset.target))(mod)
        tasks = [
            task
            for task in ms.relax_integration.extract_tasks(mod, preset.target)
            if not task.mod.attrs or not task.mod.attrs.get(SCHEDULED_ATTR, False)
        ]
    if not tasks:
        raise CompileError(f"{model.source}: no kernels to tune")

    database = ms.database.JSONDatabase(work_dir=str(output))
    done = Counter(
        structural_hash(record.workload.mod) for record in database.get_all_tuning_records()
    )
    builder, runner = _builder_and_runner(preset, rpc)
    cost_model = ms.cost_model.CostModel.create("xgb", num_tuning_cores=_cores())
    rules = rules_for(preset)
    report = TuneReport(path=str(output), trials_per_kernel=trials)
    logger.info(
        "tuning %d kernels of %s for %s, %d trials each, measured on %s, records in %s",
        len(tasks),
        model.source,
        preset.name,
        trials,
        rpc.describe() if rpc else "this machine",
        output,
    )
    # MetaSchedule prints its per-batch tables to stdout; our progress lines replace them
    # unless --verbose (its console handler takes this level when the loggers are made).
    search_logger = logging.getLogger("tvm.s_tir.meta_schedule")
    if search_logger.level == logging.NOTSET:
        search_logger.setLevel(
            logging.DEBUG if logger.isEnabledFor(logging.DEBUG) else logging.WARNING
        )
    with tempfile.TemporaryDirectory(prefix="tvm-prune-tune-") as logs:
        for index, task in enumerate(tasks, start=1):
            kernel_mod = task.dispatched[0]
            workload = database.commit_workload(kernel_mod)
            previous = done[structural_hash(kernel_mod)]
            label = f"kernel {index}/{len(tasks)} {task.task_name}"
            rule_ms = None
            if previous == 0:
                rule_ms = _measure_rule(
                    rules, kernel_mod, preset, builder, runner, database, workload, label
                )
            remaining = trials - previous - (rule_ms is not None)
            if remaining > 0:
                _search(
                    task, kernel_mod, search_target, remaining, trials - remaining, trials,
                    label, logs, builder, runner, database, cost_model,
                )  # fmt: skip
            else:
                done_here = previous + (rule_ms is not None)
                logger.info("%s: %d/%d trials done, nothing to search", label, done_here, trials)
            best = database.get_top_k(workload, 1)
            new_trials = max(remaining, 0) + (rule_ms is not None)
            report.kernels.append(
                KernelReport(
                    task.task_name,
                    previous + new_trials,
                    new_trials,
                    _mean_ms(best[0].run_secs) if best else None,
                    rule_ms,
                )
            )
    return report


def repair_database(folder: Path) -> int:
    """Drop lines of the JSON database that do not parse (the torn tail an interrupted append
    leaves); returns how many were dropped. Files are rewritten atomically, only when needed."""
    dropped = 0
    for name in DATABASE_FILES:
        path = folder / name
        if not path.is_file():
            continue
        text = path.read_text()
        lines = [line for line in text.splitlines() if line.strip()]
        kept = [line for line in lines if _parses(line)]
        if len(kept) == len(lines) and (not text or text.endswith("\n")):
            continue
        dropped += len(lines) - len(kept)
        body = "".join(f"{line}\n" for line in kept).encode()
        write_atomic(path, lambda handle, body=body: handle.write(body))
        logger.info("%s: dropped %d torn line(s)", path, len(lines) - len(kept))
    return dropped


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _build(mod: tvm.IRModule, target: tvm.target.Target, _params) -> tvm.runtime.Module:
    """MetaSchedule's ``default_build`` minus its ``import tvm.s_tir.tensor_intrin``: that import
    costs 40-80 s of CPU in every fresh builder process (one pool per batch), and the FP32 CPU
    search spaces tuned here never tensorize."""
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm.tirx.build(mod, target=target)


@functools.cache
def _import_tensor_intrinsics() -> None:
    """Import ``tvm.s_tir.tensor_intrin`` (``TuneContext`` imports it on first use) with a cheap
    ``inspect.stack``. Each of its ~500 TVMScript functions calls ``inspect.stack()``, which runs
    ``inspect.getmodule`` (a scan of ``sys.modules``) for every frame: 30-40 s of every ``tune``
    run's start here, 5-6 s with this stack. The parser reads each frame and its current source
    line only, which this stack gives from the frames themselves and ``linecache``."""
    original = inspect.stack

    def stack(context: int = 1) -> list[inspect.FrameInfo]:
        frames = []
        frame = sys._getframe(1)
        while frame is not None:
            code, lineno = frame.f_code, frame.f_lineno
            line = linecache.getline(code.co_filename, lineno, frame.f_globals)
            info = (code.co_filename, lineno, code.co_name, [line] if line else None, 0)
            frames.append(inspect.FrameInfo(frame, *info))
            frame = frame.f_back
        return frames

    inspect.stack = stack
    try:
        import tvm.s_tir.tensor_intrin  # noqa: F401
    finally:
        inspect.stack = original


def _builder_and_runner(preset: TargetPreset, rpc: RpcConfig | None):
    if rpc is None:
        return (
            ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT_SEC, f_build=_build),
            # Measured on as many threads as a compiled package runs on.
            ms.runner.LocalRunner(timeout_sec=RUN_TIMEOUT_SEC, initializer=use_all_cores),
        )
    # The device loads a shared library, built with the preset's cross compiler.
    builder = ms.builder.LocalBuilder(
        timeout_sec=BUILD_TIMEOUT_SEC,
        f_build=_build,
        f_export=functools.partial(
            _export_shared, preset.name, cross_compiler_of(preset), preset.cross_compiler_options
        ),
    )
    if rpc.tracker is not None:
        config = ms.runner.RPCConfig(
            tracker_host=rpc.tracker[0],
            tracker_port=rpc.tracker[1],
            tracker_key=rpc.key,
            session_timeout_sec=int(rpc.session_timeout),
        )
        return builder, ms.runner.RPCRunner(config, timeout_sec=RUN_TIMEOUT_SEC)
    # MetaSchedule's RPC config only knows trackers: a server's address travels in its tracker
    # fields and the session is opened directly.
    config = ms.runner.RPCConfig(
        tracker_host=rpc.server[0],
        tracker_port=rpc.server[1],
        tracker_key="server",
        session_timeout_sec=int(rpc.session_timeout),
    )
    return builder, ms.runner.RPCRunner(
        config, timeout_sec=RUN_TIMEOUT_SEC, f_create_session=_connect_server
    )


def _export_shared(target_name, cross_compiler, options, rt_mod) -> str:
    path = os.path.join(tempfile.mkdtemp(prefix="tvm-prune-tune-"), "kernel.so")
    rt_mod.export_library(path, fcompile=export_function(target_name, cross_compiler, options))
    return path


def _connect_server(config):
    from tvm import rpc

    return rpc.connect(
        config.tracker_host, config.tracker_port, session_timeout=config.session_timeout_sec
    )


def _measure_rule(rules, kernel_mod, preset, builder, runner, database, workload, label):
    """Build, run and commit the zero-tuning rules' schedule of ``kernel_mod``; its ms or None."""
    func = kernel_mod["main"]
    match = first_match(rules, label, func, preset.target)
    if match is None:
        logger.info("%s: no schedule rule takes it; searching from TVM's loops", label)
        return None
    _, sch = match
    (built,) = builder.build([ms.builder.BuilderInput(sch.mod, preset.target)])
    if built.error_msg:
        logger.warning("%s: the rule's schedule does not build here: %s", label, built.error_msg)
        return None
    # The rules may rewrite a weight's layout: the kernel built and timed takes the rewritten one.
    args_info = ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)
    try:
        (future,) = runner.run([ms.runner.RunnerInput(built.artifact_path, "cpu", args_info)])
        result = future.result()
    finally:
        ms.utils.remove_build_dir(built.artifact_path)
    if result.error_msg:
        logger.warning("%s: the rule's schedule failed to run: %s", label, result.error_msg)
        return None
    database.commit_tuning_record(
        ms.database.TuningRecord(
            sch.trace, workload, run_secs=result.run_secs, target=preset.target, args_info=args_info
        )
    )
    rule_ms = _mean_ms(result.run_secs)
    logger.info("%s: zero-tuning rules' schedule %s (trial 1)", label, _latency(rule_ms))
    return rule_ms


def _search(
    task, kernel_mod, search_target, remaining, done, trials, label, logs,
    builder, runner, database, cost_model,
) -> None:  # fmt: skip
    _import_tensor_intrinsics()
    context = ms.TuneContext(
        mod=kernel_mod,
        target=search_target,
        space_generator="post-order-apply",
        search_strategy=_search_strategy(),
        task_name=task.task_name,
        logger=ms.logging.get_loggers_from_work_dir(logs, [task.task_name])[0],
        num_threads=_cores(),
    ).clone()
    progress = _Progress(label, done, trials)
    try:
        ms.tune.tune_tasks(
            tasks=[context],
            task_weights=[1.0],
            work_dir=logs,
            max_trials_global=remaining,
            num_trials_per_iter=min(TRIALS_PER_ITERATION, remaining),
            builder=builder,
            runner=runner,
            database=database,
            cost_model=cost_model,
            measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), progress],
        )
    except TvmPruneError:
        raise
    except Exception as exc:
        raise CompileError(f"{label}: tuning failed: {tvm_error_line(exc)}") from exc


def _mean_ms(run_secs) -> float:
    values = [float(v) for v in run_secs]
    return 1e3 * sum(values) / len(values)


def _latency(ms_: float) -> str:
    return f"{ms_:.3f} ms" if ms_ >= 1 else f"{ms_ * 1e3:.2f} us"


@derived_object
class _Progress(ms.measure_callback.PyMeasureCallback):
    """Logs trials done / budget and the best latency so far after every measured batch."""

    def __init__(self, label: str, done: int, total: int):
        self.label = label
        self.done = done
        self.total = total
        self.best_ms: float | None = None

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
        if not runner_results:  # an exhausted search space sends empty batches until it stops
            return
        for built, result in zip(builder_results, runner_results):
            self.done += 1
            if built.error_msg or result.error_msg or not result.run_secs:
                continue
            ms_ = _mean_ms(result.run_secs)
            self.best_ms = ms_ if self.best_ms is None else min(self.best_ms, ms_)
        best = _latency(self.best_ms) if self.best_ms is not None else "none valid yet"
        logger.info(
            "%s: %d/%d trials, best of this run %s", self.label, self.done, self.total, best
        )
