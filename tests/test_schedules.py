"""Schedules: formulas, derivatives (autodiff oracle), precision near tau = 1, SNR matching."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsjax import schedules as S

ALL = [
    S.Constant(),
    S.DilatedVP(3.0, 1e4),
    S.DilatedVE(3.0, 1e4),
    S.DilatedVE(3.0, 1e4, form="trig"),
    S.DDPM(),
    S.VPSDE(),
    S.Cosine(),
    S.VESDE(noise_scale=100.0),
    S.EDM(noise_scale=100.0),
]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__ + getattr(s, "form", ""))
@pytest.mark.x64
def test_rate_is_derivative_and_complement_is_exact(schedule):
    for piece, (t0, t1) in enumerate(schedule.intervals()):
        t = jnp.linspace(t0, t1, 17)
        value = schedule.evaluate(t, piece)
        dtau = jax.vmap(jax.grad(lambda s: schedule.evaluate(s, piece).tau))(t)
        np.testing.assert_allclose(value.rate, dtau, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(value.tau + value.tau_c, 1.0, atol=1e-15)
        assert np.all(np.diff(value.tau) > 0), "tau must increase"
    # the pieces join continuously at breakpoints
    for k, b in enumerate(schedule.breakpoints):
        left, right = schedule.evaluate(b, k), schedule.evaluate(b, k + 1)
        np.testing.assert_allclose(left.tau, right.tau, rtol=1e-14)


@pytest.mark.x64
def test_paper_schedules_end_points_and_formulas():
    d, kappa = 1e4, 3.0
    a = kappa / math.sqrt(d)
    vp, ve = S.DilatedVP(kappa, d), S.DilatedVE(kappa, d)
    np.testing.assert_allclose(vp(0.5)[0], a)
    np.testing.assert_allclose(ve(0.5)[1], a)
    np.testing.assert_allclose(math.sqrt(d) * ve(0.75)[1], kappa * (2 - 1.5))
    for s in (vp, ve, S.Constant()):
        assert float(s(0.0)[0]) == 0.0 and float(s(1.0)[1]) == 0.0


def test_dilated_ve_complement_precision_float32_at_d_1e8():
    """sqrt(d)(1 - tau) in float32 within 1e-5 relative of float64 at d = 1e8 (docs/theory.md §4)."""
    d = 1e8
    schedule = S.DilatedVE(3.0, d)
    t32 = jnp.linspace(0.0, 1.0, 1001, dtype=jnp.float32)[:-1]
    t64 = t32.astype(jnp.float64)
    for form in ("linear", "trig"):
        schedule = S.DilatedVE(3.0, d, form=form)
        noise32 = math.sqrt(d) * schedule.value(t32).tau_c
        noise64 = math.sqrt(d) * schedule.value(t64).tau_c
        assert noise32.dtype == jnp.float32
        np.testing.assert_allclose(noise32, noise64, rtol=1e-5)
    # the naive 1 - tau in float32 fails the same check: the test can fail
    naive = math.sqrt(d) * (1 - S.DilatedVE(3.0, d).value(t32).tau)
    assert np.max(np.abs(naive / noise64 - 1)) > 1e-3


def test_ddpm_continuation_matches_discrete_product():
    ddpm = S.DDPM()
    betas = np.linspace(1e-4, 0.02, 1000)
    log_abar = np.cumsum(np.log1p(-betas))
    n = np.array([1, 2, 10, 100, 500, 1000])
    np.testing.assert_allclose(ddpm.log_alpha_bar(jnp.asarray(n, float)), log_abar[n - 1], rtol=1e-5)


@pytest.mark.parametrize("c", [1.0, 256.0])
@pytest.mark.x64
def test_snr_matching(c):
    """tau / (c (1 - tau)) = a_s / sigma_s: the interpolant and the process share the SNR."""
    for schedule in (
        S.VPSDE(noise_scale=c),
        S.Cosine(noise_scale=c),
        S.EDM(noise_scale=c),
        S.VESDE(noise_scale=c),
    ):
        t = jnp.linspace(0.05, 0.95, 7)
        tau, tau_c = schedule(t)
        a, sigma = schedule.signal_noise(t)
        np.testing.assert_allclose(tau / (c * tau_c), a / sigma, rtol=1e-10)
        assert not schedule.ends_at_data


@pytest.mark.x64
def test_vpsde_closed_form():
    s = S.VPSDE()
    t = jnp.asarray(0.3)
    sp = 1 - 0.3 * (1 - 1e-3)
    abar = math.exp(-0.1 * sp - 9.95 * sp**2)
    tau = math.sqrt(abar) / (math.sqrt(1 - abar) + math.sqrt(abar))
    np.testing.assert_allclose(s(t)[0], tau, rtol=1e-12)


def test_invalid_parameters_raise_naming_them():
    with pytest.raises(ValueError, match="kappa"):
        S.DilatedVP(0.0, 100)
    with pytest.raises(ValueError, match="kappa"):
        S.DilatedVE(-1.0, 100)
    with pytest.raises(ValueError, match="kappa"):
        S.DilatedVE(20.0, 100)  # kappa / sqrt(d) must stay below 1
    with pytest.raises(ValueError, match="dim"):
        S.DilatedVP(3.0, 0)
    with pytest.raises(ValueError, match="sigma_max"):
        S.VESDE(noise_scale=1.0, sigma_max=0.001)
    with pytest.raises(ValueError, match="form"):
        S.DilatedVE(3.0, 100, form="cubic")


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__ + getattr(s, "form", ""))
def test_float32_matches_float64(schedule):
    """tau, 1 - tau and the rate keep float32 precision over the whole grid, ends included."""
    for piece, (t0, t1) in enumerate(schedule.intervals()):
        t32 = jnp.linspace(t0, t1, 257, dtype=jnp.float32)
        v32 = schedule.evaluate(t32, piece)
        v64 = schedule.evaluate(t32.astype(jnp.float64), piece)
        for a, b in zip(v32, v64, strict=True):
            assert a.dtype == jnp.float32
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-30)
