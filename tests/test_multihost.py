"""Multi-host sampling for real: two ``jax.distributed`` processes on this machine.

The worker is the README's multi-host script (section "Several hosts"), verbatim but for the
coordinator port, followed by a few lines that save its results. Both processes run a
particle-sharded and a dim-sharded ensemble over 2 x 2 CPU devices (cross-process collectives:
Gloo); each must hold the one-process result. Then process 1 is killed while process 0 is inside a
third ``sample`` (waiting for process 1 in the all-gather): process 0 must abort with the
coordination service's "another task died" error within the heartbeat timeout, not hang.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

import nsjax

ROOT = Path(__file__).resolve().parent.parent

# After the README script: save both layouts' statistics, then process 1 waits to be killed and
# process 0 starts a third run, which cannot finish without process 1.
SUFFIX = """
import os, time
import numpy as np
out = os.environ["NSJAX_MULTIHOST_OUT"]
np.savez(f"{out}/tmp{jax.process_index()}.npz",
         **{f"particles.{k}": v for k, v in by_particles.statistics.items()},
         **{f"dim.{k}": v for k, v in by_dim.statistics.items()},
         num_devices=[by_particles.info["num_devices"], by_dim.info["num_devices"]],
         process_count=jax.process_count())
os.replace(f"{out}/tmp{jax.process_index()}.npz", f"{out}/{jax.process_index()}.npz")
if jax.process_index() == 1:
    time.sleep(600)  # killed by the test
nsjax.sample(target, interp, sched, key, 10, steps=4, sharding="particles")
print("NOT ABORTED", flush=True)
"""


def _readme_script() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("#### Several hosts (`jax.distributed`)"):]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_match_one_and_a_dead_process_ends_the_other(tmp_path):
    script = _readme_script()
    heartbeat = int(re.search(r"heartbeat_timeout_seconds=(\d+)", script).group(1))
    assert "127.0.0.1:4321" in script
    worker = tmp_path / "multihost.py"
    worker.write_text(script.replace("127.0.0.1:4321", f"127.0.0.1:{_free_port()}") + SUFFIX)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu", NSJAX_MULTIHOST_OUT=str(tmp_path), PYTHONUNBUFFERED="1")
    logs = [open(tmp_path / f"log{i}.txt", "w+") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, str(worker), str(i)], env=env, stdout=logs[i],
                              stderr=subprocess.STDOUT) for i in range(2)]

    def output(i):
        logs[i].flush()
        return (tmp_path / f"log{i}.txt").read_text()[-200000:]

    try:
        # the one-process run (same key, same particles), meanwhile in this process
        target = nsjax.GaussianMixture(dim=37)
        interp, sched = nsjax.preset("ve-dilated", target.dim)
        one = nsjax.sample(target, interp, sched, jax.random.key(0), 10, steps=4)

        deadline = time.monotonic() + 240
        while not all((tmp_path / f"{i}.npz").exists() for i in range(2)):
            for i, proc in enumerate(procs):
                assert proc.poll() is None, f"process {i} exited {proc.returncode}:\n{output(i)}"
            assert time.monotonic() < deadline, output(0) + output(1)
            time.sleep(0.1)
        for i in range(2):
            got = np.load(tmp_path / f"{i}.npz")
            assert int(got["process_count"]) == 2 and list(got["num_devices"]) == [4, 4]
            for layout in ("particles", "dim"):
                for name, values in one.statistics.items():
                    # float32 through 4 steps of d = 37: rounding ~1e-7; "dim" reassociates sums
                    np.testing.assert_allclose(got[f"{layout}.{name}"], values, rtol=1e-5,
                                               atol=1e-5, err_msg=f"process {i}, {layout}, {name}")

        # kill process 1 while process 0 waits for it inside sample
        time.sleep(0.5)
        assert procs[0].poll() is None, output(0)
        procs[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        try:
            code = procs[0].wait(timeout=heartbeat + 30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process 0 still running {heartbeat + 30} s after process 1 "
                                 f"died (heartbeat timeout {heartbeat} s):\n{output(0)}") from None
        elapsed = time.monotonic() - killed
        text = output(0)
        assert code != 0 and "NOT ABORTED" not in text, text
        assert "another task died" in text, text
        assert elapsed < heartbeat + 30
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for log in logs:
            log.close()
