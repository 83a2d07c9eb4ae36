"""Tabulated schedules: knots hit exactly, tau_c precision, breakpoints, Euler parity, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsjax
import nsjax.export
from nsjax import schedules as S
from nsjax.solvers import make_solver
from nsjax.sweeps import QuantileReducedGM


@pytest.mark.x64
def test_knots_hit_exactly_and_pieces_are_linear():
    taus = np.array([0.0, 0.01, 0.2, 0.7, 0.999, 1.0])
    sched = S.Tabulated(taus)
    n = len(taus) - 1
    assert sched.breakpoints == tuple(k / n for k in range(1, n)) and sched.ends_at_data
    for k in range(n):
        for t_knot, tau_knot in ((k / n, taus[k]), ((k + 1) / n, taus[k + 1])):
            value = sched.evaluate(t_knot, k)
            assert float(value.tau) == tau_knot and float(value.tau_c) == 1 - tau_knot
        mid = sched.evaluate((k + 0.5) / n, k)
        np.testing.assert_allclose(mid.tau, (taus[k] + taus[k + 1]) / 2, rtol=1e-15)
        np.testing.assert_allclose(mid.rate, n * (taus[k + 1] - taus[k]), rtol=1e-12)
        dtau = jax.grad(lambda t: sched.evaluate(t, k).tau)(jnp.asarray((k + 0.3) / n))
        np.testing.assert_allclose(mid.rate, dtau, rtol=1e-12)
    # a grid of N = pieces steps is exactly the list (one step per piece)
    grids = nsjax.step_grid(sched, n)
    assert [len(g) for g in grids] == [2] * n
    # a list that stops short of tau = 1 ends with a denoising step
    assert not S.Tabulated(taus[:-1]).ends_at_data


@pytest.mark.x64
def test_tau_c_keeps_float32_precision_near_one():
    # VE at d = 1e12: sigma / (sigma + c) ~ 1e-6 with c = 1e6
    c = 1e6
    sigmas = np.array([1e9, 1e6, 10.0, 1.0, 0.5])
    sched = S.Tabulated.from_sigmas(sigmas, c)
    exact_c = sigmas / (sigmas + c)
    with jax.enable_x64(False):
        f32 = S.Tabulated.from_sigmas(sigmas, c)
        assert f32.tau_c.dtype == jnp.float32
        ts = jnp.linspace(0, 1, 5, dtype=jnp.float32)
        got = np.array([float(f32.evaluate(t, min(k, 3)).tau_c) for k, t in enumerate(ts)])
        mid = float(f32.evaluate(jnp.float32(0.875), 3).tau_c)
    np.testing.assert_allclose(got, exact_c, rtol=2e-7)  # float32 rounding of each knot
    np.testing.assert_allclose(mid, (exact_c[3] + exact_c[4]) / 2, rtol=1e-6)
    assert float(1 - got[-1]) != got[-1]  # would be lost if formed as 1 - tau in float32
    np.testing.assert_allclose(S.tau_to_sigma(sched.tau, sched.tau_c, c), sigmas, rtol=1e-12)


@pytest.mark.parametrize("name, solver", [("ve-dilated", "heun")])
@pytest.mark.x64
def test_solver_on_the_list_equals_solver_on_its_schedule(name, solver):
    """A piecewise-linear schedule tabulated at its own N-step grid is the same map with a
    breakpoint at every knot: each step sees the same tau and slope, so the results agree to
    rounding."""
    interpolant, schedule = nsjax.preset(name, 10**4)
    n = 4
    t, tau, tau_c = nsjax.export.grid_values(schedule, n)
    assert np.allclose(t, np.arange(n + 1) / n)
    listed = S.Tabulated(tau, tau_c)
    system = QuantileReducedGM(nsjax.GaussianMixture(dim=10**4, p=0.8, sigma2=0.25))
    z = jnp.linspace(-2.0, 2.0, 8)

    @jax.jit
    def run(sched):
        one = lambda zi: nsjax.solve(
            system, interpolant, sched, key=zi, steps=n, solver=make_solver(solver), dtype=jnp.float64
        ).state
        return jax.vmap(one)(z)

    a, b = run(schedule), run(listed)
    np.testing.assert_allclose(b.u, a.u, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(b.g, a.g, rtol=1e-11)


@pytest.mark.x64
def test_sigma_and_ddpm_constructors_round_trip_and_refuse_other_noise_scales():
    sigmas = [80.0, 20.0, 1.0, 0.002, 0.0]
    sched = S.Tabulated.from_sigmas(sigmas, noise_scale=1.0)
    np.testing.assert_allclose(S.tau_to_sigma(sched.tau, sched.tau_c, 1.0), sigmas, rtol=1e-12)
    sched.check_noise_scale(1.0)
    with pytest.raises(ValueError, match="noise_scale"):
        nsjax.solve(nsjax.ReducedGM(nsjax.GaussianMixture(dim=100, p=0.8, sigma2=0.25)),
                    nsjax.ve(10.0), sched, key=jax.random.key(0), steps=4)
    S.Tabulated(sched.tau, sched.tau_c).check_noise_scale(10.0)  # a plain list fits any c
    steps = [999, 850, 736, 645, 545, 455, 343, 233, 124, 24, 0]
    ddpm = S.Tabulated.from_ddpm_timesteps(steps)
    assert not ddpm.ends_at_data
    back = S.tau_to_ddpm_timestep(ddpm.tau, ddpm.tau_c)
    np.testing.assert_allclose(back, steps, atol=1e-6)
    assert S.tau_to_ddpm_timestep(ddpm.tau, ddpm.tau_c, rounded=True).tolist() == steps
    # SNR matching: sqrt(abar / (1 - abar)) = tau / (c (1 - tau))
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[steps]
    np.testing.assert_allclose(ddpm.tau / ddpm.tau_c, np.sqrt(abar / (1 - abar)), rtol=1e-6)
    assert S.tau_to_ddpm_timestep(1.0, 0.0) == -1 and math.isinf(S.tau_to_ddpm_timestep(0.0, 1.0))


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: S.Tabulated([0.0]), "taus"),
        (lambda: S.Tabulated([0.0, 0.5, 0.5, 1.0]), "taus"),
        (lambda: S.Tabulated([0.3, 0.2]), "taus"),
        (lambda: S.Tabulated([-0.1, 1.0]), "taus"),
        (lambda: S.Tabulated([0.0, 1.5]), "taus"),
        (lambda: S.Tabulated([0.0, float("nan")]), "taus"),
        (lambda: S.Tabulated([0.0, 1.0], [1.0, 0.5]), "taus_c"),
        (lambda: S.Tabulated.from_sigmas([1.0, 2.0], 1.0), "sigmas"),
        (lambda: S.Tabulated.from_sigmas([1.0, -1.0], 1.0), "sigmas"),
        (lambda: S.Tabulated.from_sigmas([2.0, 1.0], -1.0), "noise_scale"),
        (lambda: S.Tabulated.from_ddpm_timesteps([0, 10]), "timesteps"),
        (lambda: S.Tabulated.from_ddpm_timesteps([1000, 10]), "timesteps"),
    ],
)
def test_bad_input_names_the_parameter(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()
