"""Data-parallel training: MirroredStrategy over two logical CPUs, MultiWorkerMirroredStrategy over two processes.

Each runs in fresh subprocesses, since devices and the multi-worker runtime are fixed at TensorFlow's start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.run import read_run

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300
TRAIN = """
import json, sys
import tensorflow as tf
if sys.argv[3] == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from training.config import load_config
from training.run import train
config = load_config("tiny").replace_train(steps=4, checkpoint_every=4, heldout_every=4)
meta = train(config, sys.argv[1], sys.argv[2], strategy=sys.argv[3])
print("RESULT", json.dumps({"replicas": meta["replicas"], "steps": meta["steps"], "loss": meta.get("loss")}))
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _result(stdout: str) -> dict:
    return json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT "))[7:])


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "mirrored"
    done = subprocess.run([sys.executable, "-c", TRAIN, str(tiny_data), str(run), "mirrored"], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = _result(done.stdout)
    assert result["replicas"] == 2 and result["steps"] == 4 and np.isfinite(result["loss"])
    assert read_run(run)["heldout_loss"]["step"] == 4
    assert (run / "checkpoints" / "ckpt-4.index").is_file()


@pytest.mark.slow
def test_multiworker_on_loopback(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "multiworker"
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-c", TRAIN, str(tiny_data), str(run), "multiworker"], cwd=ROOT,
            env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    results = [_result(out) for out, _ in outputs]
    assert all(r["replicas"] == 2 and r["steps"] == 4 for r in results)
    assert results[0]["loss"] == pytest.approx(results[1]["loss"])  # one all-reduced loss
    assert read_run(run)["steps"] == 4 and read_run(run)["replicas"] == 2
    assert (run / "checkpoints" / "ckpt-4.index").is_file()
