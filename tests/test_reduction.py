"""The exact GM reduction against the full-d engine (same noise, same solver), and at d = 1e12."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsjax
from nsjax import sample
from nsjax.reduction import ReducedGM
from nsjax.registry import preset
from nsjax.solvers import make_solver
from nsjax.targets import GaussianMixture

KEY = jax.random.PRNGKey(7)


class _SameNoise(ReducedGM):
    """Reduced particles started from the full engine's own noise ``scale * N(0, I_d)``."""

    def init(self, key, scale, dtype):
        return self.from_full(scale * jax.random.normal(key, (self.target.dim,), dtype))


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4"])
@pytest.mark.parametrize("schedule", ["ve-dilated", "vp", "ddpm"])
@pytest.mark.x64
def test_full_engine_equals_reduction_float64(solver, schedule):
    d = 300
    r = jax.random.normal(jax.random.PRNGKey(1), (d,))
    gm = GaussianMixture(dim=d, p=0.3, sigma2=0.6, direction=r * math.sqrt(d) / jnp.linalg.norm(r))
    interp, sched = preset(schedule, d, kappa=2.0)
    kwargs = dict(steps=9, solver=make_solver(solver), dtype=jnp.float64)
    full = sample(gm, interp, sched, KEY, 16, **kwargs)
    reduced = sample(_SameNoise(gm), interp, sched, KEY, 16, **kwargs)
    for name in ("overlap", "sq_dev"):
        np.testing.assert_allclose(reduced.statistics[name], full.statistics[name], rtol=1e-10)
    np.testing.assert_array_equal(reduced.nfe, full.nfe)


@pytest.mark.x64
def test_reduction_is_exact_at_huge_dimension():
    """d = 1e12 in float64: finite, and dilated VP + Heun recovers both features."""
    d = 10**12
    gm = GaussianMixture(dim=d, p=0.8, sigma2=0.25)
    interp, sched = preset("vp-dilated", d)
    result = sample(
        ReducedGM(gm), interp, sched, KEY, 20_000, steps=64, solver=make_solver("heun"), dtype=jnp.float64
    )
    features = nsjax.estimate(gm, result.statistics)
    assert features["p_error"] < 0.01 + 4 * features["p_stderr"]
    assert features["sigma2_error"] < 0.02
    assert result.nonfinite == 0


def test_reduced_initial_law():
    """u(0) ~ N(0, c^2) and |x_perp(0)|^2 ~ c^2 chi^2_{d-1}: mean and variance within 5 s.e."""
    d, n = 1000, 20_000
    c = math.sqrt(d)
    system = ReducedGM(GaussianMixture(dim=d))
    states = jax.vmap(lambda k: system.init(k, jnp.asarray(c), jnp.float64))(jax.random.split(KEY, n))
    q = np.asarray(states.q) / c**2
    assert abs(q.mean() - (d - 1)) < 5 * math.sqrt(2 * (d - 1) / n)
    assert abs(q.var() / (2 * (d - 1)) - 1) < 5 * math.sqrt(2 / n) * 2
    u = np.asarray(states.u) / c
    assert abs(u.mean()) < 5 / math.sqrt(n) and abs(u.var() - 1) < 5 * math.sqrt(2 / n)
