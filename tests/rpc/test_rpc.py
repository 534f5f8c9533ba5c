"""Packages run on the emulated aarch64 device over the tracker, equal to the host build.

Tolerance: max |device - host| <= 1e-4 x max |host| (same code, another ISA's float rounding).
Timings from the emulator mean nothing; only that they are reported is checked.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import tvm_prune
from tvm_prune.cli.main import main
from tvm_prune.errors import RunError
from tvm_prune.rpc import RpcConfig, open_session
from tvm_prune.testing.models import document_image, ppocr_det_model
from tvm_prune.testing.ort import assert_outputs_close

from ..conftest import DIGITS, PPOCR_DET_SHAPES


@pytest.fixture(scope="module")
def digits_packages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    model = DIGITS / "digits_cnn.onnx"
    device = tvm_prune.compile(model, target="aarch64-linux", output=folder / "a64.tar")
    host = tvm_prune.compile(model, target="host", output=folder / "host.tar")
    return device, host


def test_digits_on_the_device_equals_the_host(emulated_device, digits_packages):
    port, key = emulated_device
    device, host = digits_packages
    with np.load(DIGITS / "digits_test.npz") as data:
        images = data["input"][:8]
    session = open_session(RpcConfig(tracker=("127.0.0.1", port), key=key))
    runner = device.runner(session=session)
    host_runner = host.runner()
    for image in images:
        inputs = {"input": image[None]}
        assert_outputs_close(runner.run(inputs), host_runner.run(inputs), rel_tol=1e-4)


def test_ppocr_det_on_the_device_equals_the_host(emulated_device, ppocr_det_host_package, tmp_path):
    """PP-OCRv4 det (the rapidocr wheel's model) with the aarch64 schedule rules, on a rendered
    document page."""
    port, key = emulated_device
    model = tvm_prune.load_onnx(ppocr_det_model(), input_shapes=PPOCR_DET_SHAPES)
    device = tvm_prune.compile(model, target="aarch64-linux", output=tmp_path / "a64.tar")
    inputs = {"x": document_image(320, 320, seed=3)}
    session = open_session(RpcConfig(tracker=("127.0.0.1", port), key=key))
    assert_outputs_close(
        device.runner(session=session).run(inputs),
        ppocr_det_host_package.run(inputs),
        rel_tol=1e-4,
    )


def test_cli_run_over_rpc(emulated_device, digits_packages, tmp_path, capsys):
    port, key = emulated_device
    device, host = digits_packages
    with np.load(DIGITS / "digits_test.npz") as data:
        np.savez(tmp_path / "in.npz", input=data["input"][:1])
    assert (
        main(
            [
                "run",
                str(host.path),
                "--inputs",
                str(tmp_path / "in.npz"),
                "--outputs",
                str(tmp_path / "host.npz"),
            ]
        )
        == 0
    )
    args = [
        "run",
        str(device.path),
        "--inputs",
        str(tmp_path / "in.npz"),
        "--rpc-tracker",
        f"127.0.0.1:{port}",
        "--rpc-key",
        key,
        "--print-time",
        "--repeat",
        "2",
        "--compare",
        str(tmp_path / "host.npz"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "output 'logits': max error" in out
    assert "execution time over 2 x 1 runs (ms):" in out


def test_aarch64_bundle_runs_under_qemu(digits_packages, tmp_path):
    """The C++ runner, cross-compiled against the aarch64 runtime wheels, on the emulated CPU."""
    from tvm_prune.cli.rpc import setup_emulated_aarch64
    from tvm_prune.package.bundle import write_bundle

    device, host = digits_packages
    cache = Path(setup_emulated_aarch64(None)).parents[1]
    bundle = tmp_path / "bundle"
    manifest = write_bundle(device, bundle)
    assert manifest["architecture"] == "aarch64"
    with np.load(DIGITS / "digits_test.npz") as data:
        image = data["input"][:1]
    np.save(tmp_path / "input.npy", image)
    qemu = cache / "qemu" / "root" / "usr" / "bin" / "qemu-aarch64-static"
    runner = ["./tvm_prune_run", "mod.so", str(tmp_path / "input.npy"), "--out", str(tmp_path)]
    result = subprocess.run(
        [str(qemu), "-L", str(cache / "sysroot"), *runner, "--repeat", "2"],
        cwd=bundle,
        capture_output=True,
        text=True,
        env={"QEMU_CPU": "cortex-a72"},
    )
    assert result.returncode == 0, result.stderr
    assert "time_ms mean=" in result.stdout
    expected = host.run({"input": image})
    assert_outputs_close({"logits": np.load(tmp_path / "output_0.npy")}, expected, rel_tol=1e-4)


def test_a_crashed_session_does_not_take_the_server_down(
    emulated_device, digits_packages, tmp_path
):
    """A library that segfaults when loaded kills the session's worker; the supervisor of
    ``rpc emulate`` restarts the stock server, so the next session works."""
    port, key = emulated_device
    source = tmp_path / "crash.c"
    source.write_text(
        "#include <signal.h>\n"
        "__attribute__((constructor)) static void crash_on_load(void) { raise(SIGSEGV); }\n"
    )
    library = tmp_path / "crash.so"
    subprocess.run(
        ["aarch64-linux-gnu-gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True
    )
    session = open_session(RpcConfig(tracker=("127.0.0.1", port), key=key))
    session.upload(bytearray(library.read_bytes()), "crash.so")
    with pytest.raises(Exception, match="kShutdown"):
        session.load_module("crash.so")
    del session
    device, host = digits_packages
    config = RpcConfig(tracker=("127.0.0.1", port), key=key, connect_timeout=180)
    runner = device.runner(session=open_session(config))
    with np.load(DIGITS / "digits_test.npz") as data:
        inputs = {"input": data["input"][:1]}
    assert_outputs_close(runner.run(inputs), host.run(inputs), rel_tol=1e-4)


def test_unknown_key_fails_fast(emulated_device):
    port, _ = emulated_device
    config = RpcConfig(tracker=("127.0.0.1", port), key="no-such-device", connect_timeout=5)
    with pytest.raises(RunError, match="no session within 5 s"):
        open_session(config)


def test_a_server_that_never_answers_times_out():
    """A socket that accepts and then says nothing, like a stock server whose worker crashed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    try:
        config = RpcConfig(server=listener.getsockname(), connect_timeout=3)
        with pytest.raises(RunError, match="no session within 3 s"):
            open_session(config)
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tracker": "localhost:9190"}, "needs a device key"),
        ({"tracker": "localhost", "key": "k"}, "'localhost' is not host:port"),
        ({"host": "localhost"}, "--rpc-host and --rpc-port go together"),
        ({"key": "k"}, "--rpc-key k needs --rpc-tracker"),
    ],
)
def test_rpc_config_errors(kwargs, message):
    with pytest.raises(RunError, match=message):
        RpcConfig.resolve(environ={}, **kwargs)


def test_rpc_config_from_environment():
    env = {"TVM_TRACKER_HOST": "10.0.0.2", "TVM_TRACKER_PORT": "9191", "TVM_TRACKER_KEY": "rk"}
    config = RpcConfig.resolve(environ=env)
    assert (config.tracker, config.key) == (("10.0.0.2", 9191), "rk")
    assert RpcConfig.resolve(environ={}) is None
