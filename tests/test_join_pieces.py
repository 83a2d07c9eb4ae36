"""Solvers that read only the frame integrate across schedule breakpoints in one solve
(``joins_pieces``, nsjax.solve; docs/theory.md §7): same steps, same NFE, history kept."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsjax.exponential import DDIM, DEIS, DPMSolverPP2M, UniPC
from nsjax.reduction import ReducedGM
from nsjax.registry import preset
from nsjax.solve import PieceSteps, PiecewiseSteps, solve, step_grid
from nsjax.targets import GaussianMixture

D = 10**6
N = 12


@pytest.fixture(scope="module")
def problem():
    system = ReducedGM(GaussianMixture(dim=D, p=0.8, sigma2=0.25))
    interpolant, schedule = preset("ve-dilated", D, kappa=3.0)
    y0 = system.init(jax.random.PRNGKey(0), jnp.asarray(interpolant.noise_scale, jnp.float64), jnp.float64)
    return system, interpolant, schedule, y0


class _Restarting(UniPC):
    joins_pieces = False


def _run(problem, solver, steps):
    system, interpolant, schedule, y0 = problem
    return solve(system, interpolant, schedule, y0=y0, steps=steps, solver=solver)


def _counts(schedule):
    return jnp.asarray([len(g) - 1 for g in step_grid(schedule, N)])


@pytest.mark.x64
def test_piecewise_steps_hit_every_grid_point():
    """The controller's times are step_grid's, breakpoints and t = 1 exactly."""
    counts = jnp.asarray([3, 5])
    ctrl = PiecewiseSteps((0.0, 0.5, 1.0), counts)
    times = np.array([ctrl.time(jnp.asarray(i), jnp.float64) for i in range(9)])
    expected = np.concatenate([np.linspace(0, 0.5, 4), np.linspace(0.5, 1, 6)[1:]])
    np.testing.assert_array_equal(times[[0, 3, 8]], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(times, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("solver", [UniPC(), DEIS()], ids=["unipc", "deis"])
@pytest.mark.x64
def test_joined_step_specs_agree(problem, solver):
    """int N, PieceSteps (traced counts, PiecewiseSteps) and StepTo give the same joined solve."""
    _, _, schedule, _ = problem
    a = _run(problem, solver, N)
    b = jax.jit(lambda c: _run(problem, solver, PieceSteps(c)))(_counts(schedule))
    ts = np.concatenate([g[:-1] for g in step_grid(schedule, N)] + [[1.0]])
    c = _run(problem, solver, diffrax.StepTo(ts))
    for other in (b, c):
        for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(other.state)):
            np.testing.assert_allclose(x, y, rtol=1e-12)
        assert int(other.nfe) == int(a.nfe) == N
        assert int(other.num_steps) == N


@pytest.mark.x64
def test_history_crosses_the_breakpoint(problem):
    """Joined UniPC differs from the restarted one (its corrector and history cross t = 1/2);
    DDIM (no history) is the same either way; both count N evaluations."""
    joined, restarted = _run(problem, UniPC(), N), _run(problem, _Restarting(), N)
    gap = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(joined.state), jax.tree.leaves(restarted.state)))
    assert gap > 1e-6
    assert int(joined.nfe) == int(restarted.nfe) == N

    class RestartingDDIM(DDIM):
        joins_pieces = False

    a, b = _run(problem, DDIM(), N), _run(problem, RestartingDDIM(), N)
    for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state)):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_defaults():
    assert UniPC.joins_pieces and DEIS.joins_pieces and DDIM.joins_pieces
    assert not DPMSolverPP2M.joins_pieces
