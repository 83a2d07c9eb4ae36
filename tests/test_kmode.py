"""The K-mode Gaussian mixture against independent oracles: autodiff of log rho_tau, the two-mode
GaussianMixture, the exact law of its samples, Monte Carlo of exact samples for the finite-d
references, and the sampler end to end."""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import nsjax
from nsjax.interpolants import Linear, Trig
from nsjax.targets import GaussianMixture, KModeMixture

INTERPOLANTS = {
    "vp-linear": lambda d: Linear(1.0),
    "vp-trig": lambda d: Trig(1.0),
    "ve-linear": lambda d: Linear(math.sqrt(d)),
    "ve-trig": lambda d: Trig(math.sqrt(d)),
}
TAUS = [0.0, 0.05, 0.3, 0.6, 0.9, 0.999]


def _orthonormal(d, k, seed):
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(seed), (d, k)))
    return q.T


def _blocks(d=7):
    """Default block directions, K = 3 (b = 2: one coordinate belongs to no mode)."""
    return KModeMixture(dim=d, weights=(0.5, 0.3, 0.2), variances=(0.5, 1.0, 2.0), amplitudes=(0.6, 0.5, 0.4))


def _mixed(d=6):
    """Modes 0 and 1 opposite on one axis, mode 2 on an orthogonal one; unequal everything."""
    e = _orthonormal(d, 2, seed=3)
    return KModeMixture(
        dim=d,
        weights=(0.45, 0.35, 0.2),
        variances=(0.4, 0.9, 1.6),
        amplitudes=(0.5, 0.7, 0.6),
        directions=jnp.stack([e[0], -e[0], e[1]]),
    )


TARGETS = {"blocks": _blocks, "mixed": _mixed}


# -- exact posterior ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(INTERPOLANTS))
@pytest.mark.parametrize("kind", sorted(TARGETS))
@pytest.mark.x64
def test_kmode_denoiser_and_score_equal_autodiff_of_log_density(name, kind):
    """score == jax.grad log rho_tau; eta == Tweedie of it; b from both agree (float64)."""
    km = TARGETS[kind]()
    d = km.dim
    interp = INTERPOLANTS[name](d)
    for i, tau in enumerate(TAUS):
        tau_c = 1 - tau
        # points near each mode's noisy mean and far from all: every posterior regime
        centre = tau * km.means()[i % 3] if i % 2 else 0.0
        x = centre + 1.5 * jax.random.normal(jax.random.PRNGKey(i), (d,))
        score = jax.grad(lambda y: km.log_density(interp, tau, tau_c, y))(x)
        alpha, beta = interp.alpha(tau, tau_c), interp.beta(tau, tau_c)
        eta_km, score_km = km.denoise(interp, tau, tau_c, x)
        np.testing.assert_allclose(score_km, score, rtol=1e-10, atol=1e-12)
        if tau > 0:
            eta = (x + interp.noise_scale**2 * alpha**2 * score) / beta  # Tweedie, inverted
            np.testing.assert_allclose(eta_km, eta, rtol=1e-9, atol=1e-9)
            da, db = interp.dalpha(tau, tau_c), interp.dbeta(tau, tau_c)
            expected = (da / alpha) * x + (db - da * beta / alpha) * eta
            np.testing.assert_allclose(km.velocity(interp, tau, tau_c, x), expected, rtol=1e-9, atol=1e-9)
        else:  # beta = 0: the posterior is the prior, eta = E[x1] = sum_k w_k m_k
            np.testing.assert_allclose(eta_km, km.weights @ km.means(), rtol=1e-12, atol=1e-14)


@pytest.mark.x64
def test_kmode_end_point_is_finite():
    km = _mixed()
    x = jnp.linspace(-2.0, 3.0, km.dim)
    for interp in (Linear(2.0), Trig(2.0)):
        assert jnp.all(jnp.isfinite(km.velocity(interp, 1.0, 0.0, x)))
    np.testing.assert_allclose(km.velocity(Linear(2.0), 1.0, 0.0, x), x)  # b(1, x) = x


@pytest.mark.parametrize("name", sorted(INTERPOLANTS))
@pytest.mark.x64
def test_two_opposite_modes_of_equal_variance_are_the_gaussian_mixture(name):
    """K = 2, e_1 = -e_0, equal variances and amplitudes: GaussianMixture, term by term."""
    d, p, s2 = 5, 0.3, 0.7
    r = jax.random.normal(jax.random.PRNGKey(1), (d,))
    r = r * math.sqrt(d) / jnp.linalg.norm(r)
    gm = GaussianMixture(dim=d, p=p, sigma2=s2, direction=r)
    e = r / math.sqrt(d)
    km = KModeMixture(
        dim=d, weights=(p, 1 - p), variances=(s2, s2), amplitudes=(1.0, 1.0), directions=jnp.stack([e, -e])
    )
    interp = INTERPOLANTS[name](d)
    for i, tau in enumerate(TAUS + [1.0]):
        x = (0.5 + i) * jax.random.normal(jax.random.PRNGKey(10 + i), (d,))
        for a, b in zip(km.denoise(interp, tau, 1 - tau, x), gm.denoise(interp, tau, 1 - tau, x)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        if tau < 1:
            np.testing.assert_allclose(
                km.log_density(interp, tau, 1 - tau, x), gm.log_density(interp, tau, 1 - tau, x), rtol=1e-13
            )
        s_km, s_gm = km.statistics(x), gm.statistics(x)
        assert float(s_km["mode"]) == (0.0 if s_gm["overlap"] > 0 else 1.0)
        np.testing.assert_allclose(s_km["sq_dev"], s_gm["sq_dev"], rtol=1e-13)
        np.testing.assert_allclose(km.order_parameter(x)[0], gm.order_parameter(x), rtol=1e-13)
    ref_km, ref_gm = km.reference(), gm.reference()
    assert abs(ref_km["p0"] - ref_gm["p"]) < 1e-12
    pooled = ref_km["p0"] * ref_km["sigma2_0"] + ref_km["p1"] * ref_km["sigma2_1"]
    assert abs(pooled - ref_gm["sigma2"]) < 1e-12


# -- exact samples and references -----------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(TARGETS))
@pytest.mark.x64
def test_kmode_exact_samples_follow_the_law(kind):
    """Axis coordinates: KS against their exact mixture law; mean and |x_perp|^2 within 5 s.e."""
    km = TARGETS[kind]()
    d, n = km.dim, 40_000
    x = np.asarray(km.sample(jax.random.PRNGKey(2), n))
    w, s2 = np.asarray(km.weights), np.asarray(km.variances)
    axis, c, B = km._axes()
    # the axes f_b: the first mode's direction on each axis
    E = np.asarray(jax.vmap(km.combine)(jnp.eye(km.num_modes)))
    F = np.stack([E[np.flatnonzero(axis == b)[0]] for b in range(B)])
    sign = np.array([E[k] @ F[axis[k]] for k in range(km.num_modes)])
    np.testing.assert_allclose(sign * np.abs(c), c)  # c_k = ±A_k as the directions say
    v = x @ F.T
    for b in range(B):
        means = np.where(axis == b, c, 0.0)

        def cdf(t, means=means):
            return sum(w[j] * sps.norm.cdf(t, means[j], math.sqrt(s2[j])) for j in range(len(w)))

        assert sps.kstest(v[:, b], cdf).pvalue > 1e-3
    mean = np.asarray(km.weights @ km.means())
    assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * x.std(axis=0) / math.sqrt(n))
    perp = np.sum(x**2, axis=1) - np.sum(v**2, axis=1)
    assert abs(perp.mean() - (w @ s2) * (d - B)) < 5 * perp.std() / math.sqrt(n)


@pytest.mark.parametrize("kind", sorted(TARGETS))
@pytest.mark.x64
def test_kmode_references_match_monte_carlo_of_exact_samples(kind):
    """Every feature of 2e5 exact samples within 5 standard errors of its reference, and at least
    one reference further than that from its d -> inf value (w_k, s2_k): the finite-d terms count."""
    km = TARGETS[kind]()
    n = 200_000
    stats = jax.vmap(km.statistics)(km.sample(jax.random.PRNGKey(5), n))
    f = nsjax.estimate(km, stats)
    assert f["nonfinite"] == 0 and f["particles"] == n
    visible = False
    for k in range(km.num_modes):
        for name, nominal in ((f"p{k}", km.weights[k]), (f"sigma2_{k}", km.variances[k])):
            assert abs(f[f"{name}_hat"] - f[f"{name}_ref"]) < 5 * f[f"{name}_stderr"], name
            visible |= abs(float(nominal) - f[f"{name}_ref"]) > 5 * f[f"{name}_stderr"]
    assert visible
    assert abs(sum(f[f"p{k}_ref"] for k in range(km.num_modes)) - 1) < 1e-10


@pytest.mark.x64
def test_kmode_single_mode_reference_is_exact():
    km = KModeMixture(dim=4, weights=(1.0,), variances=(0.3,), amplitudes=(2.0,))
    ref = km.reference()
    assert ref["p0"] == pytest.approx(1.0, abs=1e-12) and ref["sigma2_0"] == pytest.approx(0.3, rel=1e-12)


# -- the sampler, unchanged -----------------------------------------------------------------------
def test_kmode_runs_through_the_sampler_and_recovers_its_features():
    """d = 64, VP linear, Heun, 200 steps: every feature within 5 s.e. of its exact reference;
    the path summary is the K overlaps."""
    d, n = 64, 4000
    km = KModeMixture(dim=d, weights=(0.5, 0.3, 0.2), variances=(0.25, 0.5, 1.0), amplitudes=(0.3, 0.25, 0.2))
    result = nsjax.sample(
        km, Linear(1.0), nsjax.Constant(), jax.random.PRNGKey(0), n,
        steps=200, solver=diffrax.Heun(), path_ts=[0.0, 0.5], path_coords=1,
    )
    assert result.path["overlap"].shape == (n, 2, 3)
    f = nsjax.estimate(km, result.statistics)
    assert f["nonfinite"] == 0 and f["particles"] == n
    for k in range(3):
        for name in (f"p{k}", f"sigma2_{k}"):
            assert abs(f[f"{name}_hat"] - f[f"{name}_ref"]) < 5 * f[f"{name}_stderr"], (name, f)


# -- validation -----------------------------------------------------------------------------------
TILTED = jnp.eye(6)[:3].at[1, 0].set(1.0) / jnp.sqrt(jnp.array([[1.0], [2.0], [1.0]]))  # e_0.e_1 = 0.71


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(dim=0), "dim"),
        (dict(dim=2), "dim"),  # fewer coordinates than modes for the block directions
        (dict(dim=6, weights=(0.5, 0.3, 0.3)), "weights"),
        (dict(dim=6, weights=(1.2, -0.1, -0.1)), "weights"),
        (dict(dim=6, weights=()), "weights"),
        (dict(dim=6, weights=((0.5, 0.5),)), "weights"),
        (dict(dim=6, variances=(0.25, 0.0, 1.0)), "variances"),
        (dict(dim=6, variances=(0.25, 1.0)), "variances"),
        (dict(dim=6, amplitudes=(1.0, -1.0, 1.0)), "amplitudes"),
        (dict(dim=6, amplitudes=(1.0, float("nan"), 1.0)), "amplitudes"),
        (dict(dim=6, directions=jnp.eye(6)[:2]), "directions"),
        (dict(dim=6, directions=jnp.eye(6)[:3] * 2.0), "directions"),
        (dict(dim=6, directions=jnp.eye(6)[jnp.array([0, 0, 1])]), "directions"),  # parallel rows
        (dict(dim=6, directions=TILTED), "directions"),
    ],
)
def test_kmode_invalid_inputs(kwargs, name):
    with pytest.raises(ValueError, match=name):
        KModeMixture(**kwargs)


def test_kmode_valid_edge_cases_construct():
    KModeMixture(dim=3)  # d = K
    KModeMixture(dim=3, weights=(1.0,), variances=(1.0,), amplitudes=(1.0,))  # K = 1
    KModeMixture(dim=6, amplitudes=(1, 2, 3))  # integer amplitudes become floats
