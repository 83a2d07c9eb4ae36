"""The sampler: Lemma 1 against exact laws, NFE against a run-time counter, chunking, grids,
the end point for every solver and schedule, and errors."""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import nsjax
from nsjax import sample, step_grid
from nsjax.registry import PRESETS, preset
from nsjax.solvers import evaluations_per_step, make_solver
from nsjax.targets import CurieWeiss, GaussianMixture, magnetization_law

KEY = jax.random.PRNGKey(0)


# -- Lemma 1: X_1 ~ mu for fine steps ---------------------------------------------------------------
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.x64
def test_lemma1_gm_pushforward_matches_mu(d):
    """KS test of the projection r.X/|r| against the exact mixture CDF (significance 1e-3),
    and the features within 4 standard errors of their exact finite-d values."""
    gm = GaussianMixture(dim=d, p=0.7, sigma2=0.3)
    n = 4000
    result = sample(
        gm,
        nsjax.Linear(1.0),
        nsjax.Constant(),
        KEY,
        n,
        steps=200,
        solver=diffrax.Heun(),
        dtype=jnp.float64,
        keep_states=True,
    )
    u = result.states.sum(axis=1) / math.sqrt(d)
    R, s = math.sqrt(d), math.sqrt(0.3)

    def cdf(v):
        return 0.7 * sps.norm.cdf(v, R, s) + 0.3 * sps.norm.cdf(v, -R, s)

    assert sps.kstest(u, cdf).pvalue > 1e-3
    features = nsjax.estimate(gm, result.statistics)
    assert features["p_error"] < 4 * features["p_stderr"] + 1e-3
    assert abs(features["sigma2_hat"] - features["sigma2_ref"]) < 4 * features["sigma2_stderr"] + 1e-3
    # second moment: E|x|^2 = d (1 + s2)
    assert abs(np.mean(np.sum(result.states**2, axis=1)) - d * 1.3) < 4 * np.std(
        np.sum(result.states**2, axis=1)
    ) / math.sqrt(n)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.x64
def test_lemma1_cw_pushforward_matches_law_of_s(d):
    """Chi-square test of sign-rounded spins' S against the exact law (significance 1e-3)."""
    cw = CurieWeiss(dim=d, theta=2.0, h=0.6)
    n = 3000
    result = sample(
        cw,
        nsjax.Linear(1.0),
        nsjax.Constant(),
        KEY,
        n,
        steps=400,
        solver=diffrax.Heun(),
        dtype=jnp.float64,
        keep_states=True,
    )
    assert np.max(np.abs(np.abs(result.states) - 1)) < 0.05  # the flow lands on spins
    S = np.sign(result.states).sum(axis=1).astype(int)
    k, prob = magnetization_law(d, 2.0, 0.6)
    counts = np.array([(S == kk).sum() for kk in k])
    assert counts.sum() == n
    assert sps.chisquare(counts, n * prob).pvalue > 1e-3


# -- NFE: formula against a run-time counter ---------------------------------------------------------
class _Counting(GaussianMixture):
    """A GM whose denoiser reports each evaluation to a host-side counter."""

    def denoise(self, interpolant, tau, tau_c, x):
        jax.debug.callback(_COUNTER.append, 1)
        return super().denoise(interpolant, tau, tau_c, x)


_COUNTER: list = []


@pytest.mark.parametrize(
    "solver,steps",
    [("euler", 7), ("heun", 7), ("midpoint", 7), ("rk4", 7), ("tsit5", None), ("bosh3", None)]
    + [(name, 7) for name in ("ddim", "dpm-solver-2", "dpmpp-2m", "dpmpp-3m", "unipc", "deis", "ipndm")],
)
@pytest.mark.parametrize("schedule", ["ve-dilated", "ddpm"])
def test_nfe_matches_counted_evaluations(solver, steps, schedule):
    interp, sched = preset(schedule, 4, kappa=1.0)
    _COUNTER.clear()
    result = sample(
        _Counting(dim=4), interp, sched, KEY, 1, steps=steps, solver=make_solver(solver), rtol=1e-4, atol=1e-7
    )
    jax.effects_barrier()
    assert int(result.nfe[0]) == len(_COUNTER), (int(result.nfe[0]), len(_COUNTER))
    if steps is not None:
        per_step, once = evaluations_per_step(make_solver(solver))
        pieces = len(sched.intervals())
        assert result.nfe[0] == per_step * steps + once * pieces + (0 if sched.ends_at_data else 1)


# -- grids and chunking --------------------------------------------------------------------------------
def test_step_grid_lands_on_breakpoints():
    schedule = nsjax.DilatedVE(3.0, 1e4)
    for steps in [2, 5, 20, 101]:
        grids = step_grid(schedule, steps)
        assert sum(len(g) - 1 for g in grids) == steps
        assert grids[0][-1] == 0.5 and grids[1][0] == 0.5
        assert grids[0][0] == 0.0 and grids[1][-1] == 1.0
    with pytest.raises(ValueError, match="steps"):
        step_grid(schedule, 1)


def test_results_do_not_depend_on_chunk_size():
    gm = GaussianMixture(dim=50)
    interp, sched = preset("vp-dilated", 50)
    a = sample(gm, interp, sched, KEY, 12, steps=6, chunk_size=12)
    b = sample(gm, interp, sched, KEY, 12, steps=6, chunk_size=5)
    # to rounding, not bits: XLA may vectorise reductions by batch shape (see test_chunking.py)
    ulp = 64 * float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(a.statistics["overlap"], b.statistics["overlap"], rtol=ulp, atol=ulp)
    assert b.chunk_size == 5


def test_memory_budget_sets_chunks():
    gm = GaussianMixture(dim=1000)
    interp, sched = preset("vp", 1000)
    result = sample(gm, interp, sched, KEY, 64, steps=2, memory_budget=1000 * 4 * 5 * 10)
    assert result.chunk_size == 10


def test_path_summaries_are_saved_at_requested_times():
    d = 100
    gm = GaussianMixture(dim=d)
    interp, sched = preset("ve-dilated", d)
    ts = np.linspace(0, 1, 11)
    result = sample(gm, interp, sched, KEY, 3, steps=10, path_ts=ts, path_coords=4, keep_states=True)
    assert result.path["overlap"].shape == (3, 11)
    assert result.path["coords"].shape == (3, 11, 4)
    np.testing.assert_allclose(result.path["overlap"][:, -1], result.states.sum(axis=1) / d, rtol=1e-5)
    np.testing.assert_allclose(result.path["coords"][:, -1], result.states[:, :4], rtol=1e-6)


# -- the end point: no NaN/inf for every schedule and solver --------------------------------------------
@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("form", ["linear", "trig"])
def test_velocity_finite_on_whole_grid_including_end(name, form):
    """Every stage time a solver can ask for, t in [0, 1] with the end point, float32."""
    d = 64
    interp, sched = preset(name, d, form=form)
    targets = [GaussianMixture(dim=d), CurieWeiss(dim=d), CurieWeiss(dim=d, posterior="two-saddle")]
    x = jax.random.normal(KEY, (d,), jnp.float32) * interp.noise_scale
    for target in targets:
        for piece, (t0, t1) in enumerate(sched.intervals()):
            ts = jnp.linspace(t0, t1, 9, dtype=jnp.float32)

            def field(t, piece=piece, target=target):
                tau, tau_c, rate = sched.evaluate(t, piece)
                return rate * target.velocity(interp, tau, tau_c, x)

            assert bool(jnp.all(jnp.isfinite(jax.jit(jax.vmap(field))(ts)))), (name, target)


@pytest.mark.parametrize(
    "solver", ["euler", "heun", "midpoint", "ralston", "rk4", "bosh3", "tsit5", "dopri5"]
)
def test_every_solver_ends_finite_float32(solver):
    """Solvers that evaluate at t = 1 (Heun, RK4, FSAL tableaus) on the stiffest schedules."""
    d = 256
    targets = ((CurieWeiss(dim=d), "ve-dilated"), (GaussianMixture(dim=d), "edm"))
    if solver in ("euler", "rk4", "tsit5"):  # and the power-sum posterior (compiles slowly)
        targets += ((CurieWeiss(dim=d, series_min_dim=0), "ve-dilated"),)
    for target, name in targets:
        interp, sched = preset(name, d)
        result = sample(target, interp, sched, KEY, 4, steps=8, solver=make_solver(solver), dtype=jnp.float32)
        assert result.nonfinite == 0
        assert all(np.all(np.isfinite(v)) for v in result.statistics.values())


def test_nonfinite_particles_are_reported():
    class Exploding(GaussianMixture):
        def denoise(self, interpolant, tau, tau_c, x):
            eta, score = super().denoise(interpolant, tau, tau_c, x)
            return eta / jnp.where(tau > 0.5, 0.0, 1.0), score

    target = Exploding(dim=3)
    with pytest.raises(FloatingPointError, match="non-finite"):
        sample(target, nsjax.Linear(1.0), nsjax.Constant(), KEY, 2, steps=4)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        result = sample(target, nsjax.Linear(1.0), nsjax.Constant(), KEY, 2, steps=4, on_nonfinite="warn")
    assert result.nonfinite == 2


def test_invalid_arguments():
    gm = GaussianMixture(dim=3)
    interp = nsjax.Linear(1.0)
    with pytest.raises(ValueError, match="num_particles"):
        sample(gm, interp, nsjax.Constant(), KEY, 0, steps=3)
    with pytest.raises(ValueError, match="steps"):
        sample(gm, interp, nsjax.Constant(), KEY, 2, steps=0)
    with pytest.raises(ValueError, match="adaptive"):
        sample(gm, interp, nsjax.Constant(), KEY, 2, steps=None, solver=diffrax.Euler())
    with pytest.raises(ValueError, match="solver"):
        make_solver("leapfrog")
