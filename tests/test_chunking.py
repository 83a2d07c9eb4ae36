"""Chunked = unchunked: ``sample(..., chunk_size=c)`` returns what one chunk returns.

Particle ``b`` uses ``jax.random.split(key, n)[b]`` whatever the chunking, and chunks only split
the ``lax.map`` over particles, so every output must agree: every statistic of every target, the
final states, the path summaries at ``path_ts``, ``ReducedGM``, and adaptive runs (whose particles
take different numbers of steps inside one vmapped chunk); step and evaluation counts exactly.
7 particles in chunks of 3 (3 + 3 + a remainder of 1) against one chunk of 7; float32, the default,
for every case.

Floats agree to rounding, not bit for bit: XLA:CPU vectorises a chunk's per-particle reductions
by the batch shape (measured on GM d = 24: chunks of 3 change the remainder particle's ``sq_dev``
by 4 ulp; chunks of 1 or 2 change most particles by a few ulp). The tolerance, 64 float32 ulp of
the largest value, is far below any mix-up of particles or keys (differences of order 1).

The adaptive case caught a real defect: with diffrax's initial step-size heuristic (``dt0=None``,
a finite difference ``f(y0 + h0 f0) - f(y0)`` with a tiny ``h0``, rounding-dominated in float32)
the remainder chunk of one particle took another step sequence (GM d = 16, ve-dilated, Tsit5,
rtol 1e-4: particle 6 took 13 steps in any batch and 9 alone; its overlap moved by 6e-4).
:func:`nsjax.solve` now starts every adaptive piece with a fixed step (``solve.INITIAL_STEPS``).
"""

import jax
import numpy as np
import pytest

import nsjax
from nsjax import preset, sample

KEY = jax.random.key(11)
N = 7
ULP = 64 * float(np.finfo(np.float32).eps)


def _close(actual, desired, name):
    """Equal to 64 ulp of the largest ``|desired|`` (rounding of reassociated reductions)."""
    scale = float(np.abs(desired).max()) or 1.0
    np.testing.assert_allclose(actual, desired, rtol=ULP, atol=ULP * scale, err_msg=name)


def _gm_adaptive_path():
    """GM, adaptive (Tsit5, PID), with path summaries (see the module docstring)."""
    target = nsjax.GaussianMixture(dim=16)
    interp, sched = preset("ve-dilated", target.dim)
    return target, interp, sched, {"steps": None, "solver": nsjax.make_solver("tsit5"),
                                   "rtol": 1e-4, "atol": 1e-6, "path_ts": [0.0, 0.5, 1.0],
                                   "path_coords": 3}


def _cw_exact():
    """The exact posterior's saddle branch (64 < d < series_min_dim)."""
    target = nsjax.CurieWeiss(dim=80, h=0.3)
    assert target.posterior.name == "exact"
    return target, *preset("vp-dilated", target.dim), {"steps": 4}


def _kmode():
    target = nsjax.KModeMixture(dim=12)
    return target, *preset("ve-dilated", target.dim), {"steps": 5}


def _reduced_path():
    """``ReducedGM`` at d = 1e6, fixed steps, with its path summary."""
    system = nsjax.ReducedGM(nsjax.GaussianMixture(dim=10**6))
    return system, *preset("ve-dilated", 10**6), {"steps": 5, "path_ts": [0.3, 1.0]}


CASES = {
    "gm-adaptive-path": _gm_adaptive_path,
    "cw-exact": _cw_exact,
    "kmode": _kmode,
    "reduced-gm-path": _reduced_path,
}


@pytest.mark.parametrize("case", CASES)
def test_chunked_equals_unchunked(case):
    target, interp, sched, kw = CASES[case]()
    whole = sample(target, interp, sched, KEY, N, keep_states=True, **kw)
    assert whole.chunk_size == N  # the default budget holds all 7 particles: one chunk
    chunked = sample(target, interp, sched, KEY, N, chunk_size=3, keep_states=True, **kw)
    assert chunked.chunk_size == 3
    assert whole.statistics.keys() == chunked.statistics.keys() and whole.statistics
    for name, values in whole.statistics.items():
        assert values.shape == (N,) and np.isfinite(values).all(), name
        _close(chunked.statistics[name], values, name)
    np.testing.assert_array_equal(chunked.nfe, whole.nfe)
    np.testing.assert_array_equal(chunked.num_steps, whole.num_steps)
    jax.tree.map(lambda a, b: _close(a, b, "states"), chunked.states, whole.states)
    if "path_ts" in kw:
        np.testing.assert_array_equal(chunked.path_ts, whole.path_ts)
        assert whole.path.keys() == chunked.path.keys() and "overlap" in whole.path
        for name, values in whole.path.items():
            assert values.shape[:2] == (N, len(kw["path_ts"])), name
            _close(chunked.path[name], values, name)
    else:
        assert whole.path is None and chunked.path is None
    if kw["steps"] is None:  # adaptive: the particles really took different step counts
        assert len(set(whole.num_steps.tolist())) > 1, whole.num_steps
