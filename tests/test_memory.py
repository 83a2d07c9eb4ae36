"""Memory report of ``sample`` and chunk sizes chosen from ``memory_budget``."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

import nsjax
from nsjax import sample
from nsjax.registry import preset
from nsjax.solvers import evaluations_per_step, make_solver
from nsjax.systems import Particles

KEY = jax.random.key(0)


# Bytes of one float32 particle at d = 1000, written out by hand: the state, the stage
# derivatives (1 for Euler, 2 for Heun, 4 for RK4) and 4 more d-vectors of work space
# (``d * itemsize * (stages + 4)``, the model documented in ``Particles.bytes_per_particle``).
PER_PARTICLE_D1000_F32 = {"euler": 1000 * 4 * 5, "heun": 1000 * 4 * 6, "rk4": 1000 * 4 * 8}


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4"])
def test_chunk_is_the_largest_that_fits_the_budget(solver):
    d = 1000
    target = nsjax.GaussianMixture(dim=d)
    interp, sched = preset("vp", d)
    per_particle = PER_PARTICLE_D1000_F32[solver]
    assert evaluations_per_step(make_solver(solver)) == ({"euler": 1, "heun": 2, "rk4": 4}[solver], 0)
    assert Particles(target).bytes_per_particle(4, evaluations_per_step(make_solver(solver))[0]) == (
        per_particle
    )
    budget = 7 * per_particle + per_particle // 2
    result = sample(target, interp, sched, KEY, 20, steps=2, solver=make_solver(solver),
                    memory_budget=budget)
    assert result.chunk_size == 7
    assert result.memory["estimated_bytes_per_device"] == 7 * per_particle <= budget
    # one byte less than 7 particles: the chunk drops to 6 (the observable a budget controls)
    result = sample(target, interp, sched, KEY, 20, steps=2, solver=make_solver(solver),
                    memory_budget=7 * per_particle - 1)
    assert result.chunk_size == 6


def test_report_fields():
    target = nsjax.GaussianMixture(dim=100)
    interp, sched = preset("vp", 100)
    result = sample(target, interp, sched, KEY, 4, steps=2, dtype=jnp.float32)
    memory = result.memory
    assert set(memory) == {"estimated_bytes_per_device", "peak_rss_bytes", "device_peak_bytes"}
    assert memory["peak_rss_bytes"] > 10 * 2**20  # a Python process with jax loaded
    assert memory["device_peak_bytes"] is None or memory["device_peak_bytes"] > 0


PEAK = textwrap.dedent(
    """
    import sys, jax
    import nsjax
    from nsjax.registry import preset
    d, chunk = 4_000_000, int(sys.argv[1])
    interp, sched = preset("vp", d)
    r = nsjax.sample(nsjax.GaussianMixture(dim=d), interp, sched, jax.random.key(0), 16,
                     steps=2, chunk_size=chunk)
    print(r.memory["peak_rss_bytes"], r.memory["estimated_bytes_per_device"])
    """
)


def test_peak_rss_follows_the_estimate():
    """Fresh processes: a 16-particle chunk's measured peak exceeds a 1-particle chunk's by at
    least half the estimated difference (an estimate of the working set, not a bound)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    runs = []
    for chunk in (1, 16):
        out = subprocess.run([sys.executable, "-c", PEAK, str(chunk)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        runs.append([int(v) for v in out.stdout.split()])
    (rss_1, est_1), (rss_16, est_16) = runs
    assert est_16 == 16 * est_1
    assert rss_16 - rss_1 >= 0.5 * (est_16 - est_1), runs
