"""Interpolants: the finite-at-the-end velocity form equals the textbook forms of docs/theory.md §1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsjax.interpolants import Custom, Linear, Trig, make_interpolant, ve, vp


@pytest.mark.parametrize("c", [1.0, 30.0])
@pytest.mark.x64
def test_linear_velocity_is_eta_minus_x_over_one_minus_tau(c):
    interp = Linear(c)
    key = jax.random.PRNGKey(0)
    for tau in [0.1, 0.5, 0.93]:
        x, eta = jax.random.normal(key, (2, 7))
        score = interp.score_from_denoiser(tau, 1 - tau, x, eta)
        b = interp.velocity(tau, 1 - tau, x, eta, score)
        np.testing.assert_allclose(b, (eta - x) / (1 - tau), rtol=1e-12)


@pytest.mark.parametrize("c", [1.0, 30.0])
@pytest.mark.x64
def test_trig_velocity_is_eta_minus_tau_x_over_one_minus_tau2(c):
    interp = Trig(c)
    x, eta = jax.random.normal(jax.random.PRNGKey(1), (2, 5))
    for tau in [0.2, 0.7, 0.99]:
        b = interp.velocity_from_denoiser(tau, 1 - tau, x, eta)
        np.testing.assert_allclose(b, (eta - tau * x) / (1 - tau**2), rtol=1e-10)


@pytest.mark.x64
def test_general_formula_and_custom_autodiff_agree():
    """b = (alpha'/alpha) x + (beta' - alpha' beta / alpha) eta for a user's pair (autodiff)."""
    custom = Custom(lambda t: jnp.cos(jnp.pi * t / 2), lambda t: jnp.sin(jnp.pi * t / 2), 2.0)
    x, eta = jax.random.normal(jax.random.PRNGKey(2), (2, 4))
    tau = 0.37
    a, da = jnp.cos(jnp.pi * tau / 2), -jnp.pi / 2 * jnp.sin(jnp.pi * tau / 2)
    b_, db = jnp.sin(jnp.pi * tau / 2), jnp.pi / 2 * jnp.cos(jnp.pi * tau / 2)
    expected = (da / a) * x + (db - da * b_ / a) * eta
    np.testing.assert_allclose(custom.velocity_from_denoiser(tau, 1 - tau, x, eta), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "interp, dbeta_1",
    [
        (Linear(5.0), 1.0),
        (Trig(2.0), 1.0),
        (Custom(lambda t: 1 - t, lambda t: t**2, 3.0), 2.0),  # beta'(1) = 2
    ],
)
def test_end_point_velocity_is_finite_and_exact(interp, dbeta_1):
    """At tau = 1, E[x0 | I_1 = x] = 0 so b(1, x) = beta'(1) eta with eta = E[x1 | I_1 = x].

    ``eta`` differs from ``x`` here (a consistent denoiser has eta = x at tau = 1, but the formula
    must use its ``eta`` argument): swapping the two arguments, or using ``x`` in place of
    ``eta``, gives ``beta'(1) x`` and fails; so does dropping ``beta'(1)`` (the Custom case)."""
    x = jnp.arange(3.0)
    eta = jnp.array([0.5, -2.0, 7.0])
    b = interp.velocity_from_denoiser(jnp.float32(1.0), jnp.float32(0.0), x, eta)
    assert jnp.all(jnp.isfinite(b))
    np.testing.assert_allclose(b, dbeta_1 * eta, rtol=1e-6)


def test_constructors_and_errors():
    assert vp().noise_scale == 1.0
    assert ve(400).noise_scale == 20.0
    with pytest.raises(ValueError, match="noise_scale"):
        Linear(0.0)
    with pytest.raises(ValueError, match="dim"):
        ve(0)
    with pytest.raises(ValueError, match="form"):
        make_interpolant("cubic", 1.0)
