"""``--tuning-records``: a MetaSchedule database is applied, and the schedule reaches the library.

The database is written here from a hand-made schedule (split + parallel) instead of a tuning
run, which takes minutes: what is under test is lookup and application, not the search. The
records shipped in ``schedules/host/`` are checked on the models they were tuned for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm.s_tir import meta_schedule as ms

import tvm_prune
from tvm_prune.cli.main import main
from tvm_prune.target import resolve_target
from tvm_prune.testing import models, networks
from tvm_prune.testing.ort import assert_outputs_close, random_inputs, run_ort
from tvm_prune.tuning_records import tuning_passes

PARALLEL_SYMBOL = b"TVMBackendParallelLaunch"
REPO = Path(__file__).resolve().parents[1]
SHIPPED_HOST_RECORDS = REPO / "schedules" / "host"


@pytest.fixture(scope="module")
def records(matmul_model, tmp_path_factory):
    model = tvm_prune.load_onnx(matmul_model)
    target = resolve_target("host").target
    with target:
        mod = tvm.transform.Sequential(tuning_passes(target))(model.bound_module())
    (func,) = [f for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    func = func.with_attr("global_symbol", "main")
    sch = tvm.s_tir.Schedule(func)
    i0, i1, k = sch.get_loops(sch.get_sblock("matmul"))
    outer, inner = sch.split(i1, [None, 8])
    sch.reorder(i0, outer, k, inner)
    sch.parallel(outer)

    folder = tmp_path_factory.mktemp("records")
    database = ms.database.JSONDatabase(work_dir=str(folder))
    workload = database.commit_workload(tvm.IRModule({"main": func}))
    database.commit_tuning_record(
        ms.database.TuningRecord(
            sch.trace,
            workload,
            run_secs=[1e-6],
            target=target,
            args_info=ms.arg_info.ArgInfo.from_prim_func(func),
        )
    )
    return folder


def test_records_are_applied_and_kept(matmul_model, records, tmp_path):
    tuned = tvm_prune.compile(matmul_model, output=tmp_path / "t.tar", tuning_records=records)
    plain = tvm_prune.compile(matmul_model, output=tmp_path / "p.tar", schedule_rules=False)
    assert tuned.metadata.compile["tuning_records"] == {
        "path": str(records),
        "applied": 1,
        "kernels": 1,
    }
    # The record's kernel is left alone by the schedule rules, and nothing else is left over.
    assert tuned.metadata.compile["schedule"]["pre_scheduled"] == 1
    assert tuned.metadata.compile["schedule"]["scheduled"] == {}
    assert tuned.metadata.compile["schedule"]["fallback"] == 0
    # TVM's default CPU schedule is serial; only the record's schedule calls the thread pool.
    assert PARALLEL_SYMBOL in tuned.members["mod.so"]
    assert PARALLEL_SYMBOL not in plain.members["mod.so"]
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    # One 64-term float32 dot product per output, summed in another order than ORT's.
    assert_outputs_close(tuned.run({"x": x}), run_ort(matmul_model, {"x": x}), rel_tol=1e-5)


def test_records_that_match_nothing_are_reported(conv_model, records, tmp_path):
    package = tvm_prune.compile(conv_model, output=tmp_path / "c.tar", tuning_records=records)
    report = package.metadata.compile["tuning_records"]
    assert report["applied"] == 0
    assert report["kernels"] > 0


def test_cli_flag(matmul_model, records, tmp_path, capsys):
    out = tmp_path / "cli.tar"
    assert (
        main(["compile", str(matmul_model), "-o", str(out), "--tuning-records", str(records)]) == 0
    )
    assert "applied to 1 of 1 kernels" in capsys.readouterr().err


def _digits_cnn(tmp_path):
    return REPO / "examples" / "digits" / "digits_cnn.onnx"


def _resnet18_like(tmp_path):
    return models.save(networks.resnet18_like(), tmp_path / "resnet18_like.onnx")


@pytest.mark.parametrize(
    "make_model", [_digits_cnn, pytest.param(_resnet18_like, marks=pytest.mark.slow)]
)
def test_shipped_host_records_apply_and_match_ort(make_model, tmp_path):
    """Every kernel of the models they were tuned for has a record; max |tvm - ort| <= 1e-4 x
    max |ort|."""
    path = make_model(tmp_path)
    package = tvm_prune.compile(
        path, output=tmp_path / "m.tar", tuning_records=SHIPPED_HOST_RECORDS
    )
    report = package.metadata.compile["tuning_records"]
    assert report["applied"] == report["kernels"] > 0
    inputs = random_inputs(package.inputs)
    assert_outputs_close(package.run(inputs), run_ort(path, inputs), rel_tol=1e-4)
