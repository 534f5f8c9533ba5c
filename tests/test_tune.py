"""``tvm-prune tune``: a short real search (one kernel, 3 trials) that is killed, resumed, and
whose records then compile into a library equal to ONNX Runtime; and the bad-input errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

import tvm_prune
from tvm_prune.cli.main import main
from tvm_prune.errors import RunError
from tvm_prune.rpc import RpcConfig
from tvm_prune.testing.ort import assert_outputs_close, run_ort
from tvm_prune.tuning import repair_database, tune_model

TRIALS = 3
RECORDS = "database_tuning_record.json"


def _record_lines(folder) -> list[str]:
    path = folder / RECORDS
    return path.read_text().splitlines() if path.is_file() else []


def _trials_per_workload(folder) -> Counter:
    # A record line is [workload index, record]; the index is the first field.
    return Counter(line.split(",", 1)[0] for line in _record_lines(folder))


def test_killed_run_resumes_without_losing_or_repeating_trials(matmul_model, tmp_path, capsys):
    records = tmp_path / "records"
    command = [sys.executable, "-m", "tvm_prune", "tune", str(matmul_model)]
    command += ["--trials", str(TRIALS), "-o", str(records)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        # Kill as soon as the first record (the rules' schedule) is committed: mid-run.
        deadline = time.time() + 90
        while not _record_lines(records) and time.time() < deadline:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
    before = _record_lines(records)
    assert 1 <= len(before) < TRIALS
    # A kill can land mid-append: simulate the torn last line it would leave.
    with (records / RECORDS).open("a") as handle:
        handle.write(before[-1][: len(before[-1]) // 2])

    assert main(["tune", str(matmul_model), "--trials", str(TRIALS), "-o", str(records)]) == 0
    err = capsys.readouterr().err
    assert "dropped 1 torn line" in err
    assert f"/{TRIALS} trials" in err  # progress: trials done / budget
    after = _record_lines(records)
    assert after[: len(before)] == before  # every committed record kept, in place
    assert list(_trials_per_workload(records).values()) == [TRIALS]  # budget met, not exceeded

    # A third run has nothing left to do.
    assert main(["tune", str(matmul_model), "--trials", str(TRIALS), "-o", str(records)]) == 0
    assert _record_lines(records) == after
    assert f"{TRIALS}/{TRIALS} trials done, nothing to search" in capsys.readouterr().err

    package = tvm_prune.compile(matmul_model, output=tmp_path / "t.tar", tuning_records=records)
    assert package.metadata.compile["tuning_records"]["applied"] == 1
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    # One 64-term float32 dot product per output, summed in another order than ORT's.
    assert_outputs_close(package.run({"x": x}), run_ort(matmul_model, {"x": x}), rel_tol=1e-5)


def test_repair_keeps_whole_lines_only(tmp_path):
    (tmp_path / "database_workload.json").write_text('["a"]\n["b"]\n')
    (tmp_path / RECORDS).write_text('[0, {"x": 1}]\n[1, {"x"')
    assert repair_database(tmp_path) == 1
    assert (tmp_path / RECORDS).read_text() == '[0, {"x": 1}]\n'
    assert (tmp_path / "database_workload.json").read_text() == '["a"]\n["b"]\n'
    assert repair_database(tmp_path) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "no-such-preset"], "no-such-preset"),
        (["--target", "aarch64-linux"], "aarch64-linux is cross-compiled: tune it on its device"),
        (["--rpc-tracker", "127.0.0.1:9"], "needs a device key"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(matmul_model, tmp_path, capsys, extra, message):
    records = tmp_path / "records"
    argv = ["tune", str(matmul_model), "--trials", "2", "-o", str(records), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tvm-prune: error: ")
    assert message in err[-1]
    assert not records.exists()  # nothing written before the input is known to be good


def test_missing_tracker_fails_before_any_work(matmul_model, tmp_path):
    # The CLI waits the default 60 s for a session; the bound is what is under test.
    port = _free_port()
    rpc = RpcConfig(tracker=("127.0.0.1", port), key="k", connect_timeout=3)
    records = tmp_path / "records"
    with pytest.raises(RunError, match=f"RPC tracker 127.0.0.1:{port}, key k: "):
        tune_model(matmul_model, trials=2, output=records, rpc=rpc)
    assert not records.exists()
