"""Compiled sweeps (nsjax.sweeps): oracles against nsjax.sample, one trace per shape."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsjax import GaussianMixture, ReducedGM, preset, sample
from nsjax.registry import PAPER_SCHEDULES, select
from nsjax.schedules import EDM, VESDE, Constant, DilatedVE, DilatedVP, Selected
from nsjax.sweeps import QuantileReducedGM, grid, normal_quantiles, sweep

D = 10**6


def _paper(point):
    """The four paper presets as one traced pytree (index, d and kappa traced)."""
    return tuple(select(PAPER_SCHEDULES, point["schedule"], point["d"], kappa=point["kappa"]))


def _reduced_build(point):
    target = GaussianMixture(dim=2, p=point["p"], sigma2=point["sigma2"])
    return (ReducedGM(target, dim=point["d"]), *_paper(point))


def _params(names, dims, kappa=3.0):
    pts = [(PAPER_SCHEDULES.index(n), d) for n in names for d in dims]
    return {
        "schedule": np.array([i for i, _ in pts], float),
        "d": np.array([d for _, d in pts]),
        "kappa": np.full(len(pts), kappa),
        "p": np.full(len(pts), 0.8),
        "sigma2": np.full(len(pts), 0.25),
    }


def _quantile_build(point):
    target = GaussianMixture(dim=2, p=point["p"], sigma2=point["sigma2"])
    return (QuantileReducedGM(target, dim=point["d"]), *_paper(point))


@pytest.mark.parametrize(
    "name, solver",
    [
        ("vp", diffrax.Euler()),
        ("ve", diffrax.Heun()),
        ("vp-dilated", diffrax.Heun()),
        ("ve-dilated", diffrax.Euler()),
    ],
)
@pytest.mark.x64
def test_sweep_point_equals_sample(name, solver):
    """A sweep point (traced N, selected traced schedule) reproduces sample() on the same particles.

    Even N: the constant schedule joined to the dilations has a breakpoint at 1/2, so its grid is
    uniform only for even N (N = 5 gives 2 + 3 steps).
    """
    keys = jax.random.split(jax.random.PRNGKey(3), 64)
    result = sweep(_reduced_build, _params([name], [1e3, D]), keys, steps=[6, 12], solver=solver)
    for i, n in [(1, 12)]:  # the second step count reuses the traced program
        interpolant, schedule = preset(name, D)
        ref = sample(
            ReducedGM(GaussianMixture(dim=D)),
            interpolant,
            schedule,
            jax.random.PRNGKey(3),
            64,
            steps=n,
            solver=solver,
            dtype=jnp.float64,
        )
        for stat in ("overlap", "sq_dev"):
            np.testing.assert_allclose(
                result.statistics[stat][i, 1], ref.statistics[stat], rtol=1e-9, atol=1e-9
            )
        np.testing.assert_array_equal(result.nfe[i, 1], ref.nfe)


@pytest.mark.x64
def test_one_trace_for_all_step_counts_and_points():
    calls = []

    def build(point):
        calls.append(1)
        return _quantile_build(point)

    z = normal_quantiles(16)
    result = sweep(build, _params(["vp", "ve-dilated"], [1e3, 1e5, 1e7]), z, steps=[2, 4, 8, 16])
    assert result.statistics["overlap"].shape == (4, 6, 16)
    assert len(calls) == 2  # one probe on the host, one trace
    np.testing.assert_array_equal(result.nfe[:, 0, 0], [2, 4, 8, 16])  # Euler: one per step


@pytest.mark.x64
def test_stop_ends_early():
    z = normal_quantiles(8)
    result = sweep(
        _quantile_build, _params(["vp"], [1e3]), z, steps=[2, 4, 8], stop=lambda i, r: i == 1
    )
    assert result.steps == [2, 4] and result.nfe.shape[0] == 2


@pytest.mark.x64
def test_quantile_particles_are_a_quadrature():
    """p_hat of stratified particles is within 1/n of a large Monte-Carlo ensemble's."""
    n = 256
    params = _params(["vp-dilated"], [1e4])

    quad = sweep(_quantile_build, params, normal_quantiles(n), steps=[64], solver=diffrax.Heun())
    mc = sweep(
        _reduced_build,
        params,
        jax.random.split(jax.random.PRNGKey(0), 20_000),
        steps=[64],
        solver=diffrax.Heun(),
    )
    p_quad = np.mean(quad.statistics["overlap"][0, 0] > 0)
    p_mc = np.mean(mc.statistics["overlap"][0, 0] > 0)
    assert abs(p_quad - p_mc) < 1 / n + 3 * np.sqrt(0.16 / 20_000)
    s_quad = quad.statistics["sq_dev"][0, 0].mean()
    s_mc = mc.statistics["sq_dev"][0, 0]
    assert abs(s_quad - s_mc.mean()) < 4 * s_mc.std() / np.sqrt(s_mc.size) + 2e-3


@pytest.mark.parametrize("dim", [1e3, 1e8])
@pytest.mark.x64
def test_two_piece_matches_dilated(dim):
    """The traced selection of the paper presets equals each schedule built alone."""
    t = jnp.linspace(0.0, 1.0, 41)
    for name, exact in (
        ("vp-dilated", DilatedVP(3.0, dim)),
        ("ve-dilated", DilatedVE(3.0, dim)),
        ("vp", Constant()),
    ):
        point = {k: jnp.asarray(v[0]) for k, v in _params([name], [dim]).items()}
        interpolant, schedule = jax.jit(_paper)(point)
        c = dim**0.5 if name.startswith("ve") else 1.0
        np.testing.assert_allclose(interpolant.noise_scale, c, rtol=1e-15)
        for piece in range(2):
            mine = schedule.evaluate(t, piece)
            ref = exact.evaluate(t, min(piece, len(exact.intervals()) - 1))
            for a, b in zip(mine, ref, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.x64
def test_selected_and_scaled_vesde():
    t = jnp.linspace(0.0, 1.0, 11)
    c = 100.0
    options = (VESDE(noise_scale=c), EDM(noise_scale=c))
    for index, schedule in enumerate(options):
        chosen = Selected(options, jnp.asarray(float(index))).evaluate(t, 0)
        for a, b in zip(chosen, schedule.evaluate(t, 0), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-13)
    scaled = jax.jit(lambda s: VESDE(noise_scale=c, sigma_max=s).evaluate(t, 0))(jnp.asarray(348.0))
    for a, b in zip(scaled, VESDE(noise_scale=c).evaluate(t, 0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(ValueError, match="breakpoints"):
        Selected((Constant(), DilatedVP(3.0, 100)), 0)


def test_reduced_dim_override_matches_static_dim():
    target = GaussianMixture(dim=10**5)
    state = ReducedGM(target).init(jax.random.PRNGKey(1), 1.0, jnp.float64)
    over = ReducedGM(GaussianMixture(dim=2), dim=1e5)
    np.testing.assert_allclose(over.init(jax.random.PRNGKey(1), 1.0, jnp.float64).q, state.q)
    for k, v in ReducedGM(target).statistics(state).items():
        np.testing.assert_allclose(over.statistics(state)[k], v, rtol=1e-14)
    with pytest.raises(ValueError, match="direction"):
        ReducedGM(GaussianMixture(dim=3, direction=jnp.ones(3)), dim=3.0)


@pytest.mark.x64
def test_grid_and_errors():
    g = grid(kappa=[2.0, 3.0], p=[0.3, 0.5, 0.8])
    assert g["kappa"].shape == (6,) and list(g["p"][:3]) == [0.3, 0.5, 0.8]
    with pytest.raises(ValueError, match="same length"):
        sweep(_quantile_build, {"d": [1e3], "p": [0.1, 0.2]}, normal_quantiles(4), steps=[2])
    with pytest.raises(ValueError, match="adaptive"):
        sweep(
            _quantile_build,
            _params(["vp"], [1e3]),
            normal_quantiles(4),
            steps=None,
            solver=diffrax.Euler(),
        )
    with pytest.raises(ValueError, match="kappa"):
        DilatedVP(3.0, 4.0)
