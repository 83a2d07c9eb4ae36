"""Targets against independent oracles: autodiff of log rho_tau (GM), brute-force enumeration
and the exact law of S (CW), exact finite-d feature references."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from nsjax.interpolants import Linear, Trig
from nsjax.targets import CurieWeiss, GaussianMixture, magnetization, magnetization_law
from nsjax.targets._sums import coordinate_sum
from nsjax.targets.cw_posteriors import Grid, PowerSum, Saddle

INTERPOLANTS = {
    "vp-linear": lambda d: Linear(1.0),
    "vp-trig": lambda d: Trig(1.0),
    "ve-linear": lambda d: Linear(math.sqrt(d)),
    "ve-trig": lambda d: Trig(math.sqrt(d)),
}


@pytest.mark.parametrize("name", sorted(INTERPOLANTS))
@pytest.mark.parametrize("direction", [False, True])
@pytest.mark.x64
def test_gm_velocity_equals_autodiff_of_log_density(name, direction):
    """b from the closed-form posterior == b from jax.grad log rho_tau through Tweedie."""
    d = 6
    interp = INTERPOLANTS[name](d)
    key_r, key_x = jax.random.split(jax.random.PRNGKey(0))
    r = None
    if direction:
        r = jax.random.normal(key_r, (d,))
        r = r * math.sqrt(d) / jnp.linalg.norm(r)
    gm = GaussianMixture(dim=d, p=0.3, sigma2=0.7, direction=r)
    for i, tau in enumerate([0.05, 0.3, 0.6, 0.9, 0.999]):
        tau_c = 1 - tau
        x = 1.5 * jax.random.normal(jax.random.fold_in(key_x, i), (d,))
        score = jax.grad(lambda y: gm.log_density(interp, tau, tau_c, y))(x)
        alpha, beta = interp.alpha(tau, tau_c), interp.beta(tau, tau_c)
        eta = (x + interp.noise_scale**2 * alpha**2 * score) / beta  # Tweedie, inverted
        da, db = interp.dalpha(tau, tau_c), interp.dbeta(tau, tau_c)
        expected = (da / alpha) * x + (db - da * beta / alpha) * eta
        np.testing.assert_allclose(gm.velocity(interp, tau, tau_c, x), expected, rtol=1e-9, atol=1e-9)
        eta_gm, score_gm = gm.denoise(interp, tau, tau_c, x)
        np.testing.assert_allclose(score_gm, score, rtol=1e-10, atol=1e-12)


def test_gm_end_point_velocity_is_finite():
    gm = GaussianMixture(dim=4)
    x = jnp.array([0.3, -1.0, 2.0, 0.0])
    for interp in (Linear(2.0), Trig(2.0)):
        assert jnp.all(jnp.isfinite(gm.velocity(interp, 1.0, 0.0, x)))
    np.testing.assert_allclose(gm.velocity(Linear(2.0), 1.0, 0.0, x), x)  # b(1, x) = x


@pytest.mark.parametrize("d", [1, 2, 50])
@pytest.mark.x64
def test_gm_exact_samples_and_references(d):
    """Empirical features of exact samples match the exact finite-d references (5 sigma)."""
    gm = GaussianMixture(dim=d, p=0.8, sigma2=0.25)
    n = 40_000
    x = gm.sample(jax.random.PRNGKey(d), n)
    rx = x.sum(axis=1)
    p_hat = float(jnp.mean(rx > 0))
    sq = jnp.sum((x - jnp.where(rx > 0, 1.0, -1.0)[:, None]) ** 2, axis=1) / d
    ref = gm.reference()
    assert abs(p_hat - ref["p"]) < 5 * math.sqrt(ref["p"] * (1 - ref["p"]) / n)
    assert abs(float(sq.mean()) - ref["sigma2"]) < 5 * float(sq.std()) / math.sqrt(n)
    # independent closed form (r = 1, R = sqrt(d), s = 1/2): P(r.x > 0) = p Phi(R/s) + (1-p) Phi(-R/s)
    z = math.sqrt(d) / 0.5
    assert ref["p"] == pytest.approx(0.8 * sps.norm.cdf(z) + 0.2 * sps.norm.cdf(-z), rel=1e-12)
    if d == 1:  # the finite-d correction is visible: the d = inf values fail the same 5-sigma checks
        assert abs(p_hat - 0.8) > 5 * math.sqrt(0.8 * 0.2 / n), p_hat
        assert abs(float(sq.mean()) - 0.25) > 5 * float(sq.std()) / math.sqrt(n)


def test_gm_invalid_inputs():
    with pytest.raises(ValueError, match="dim"):
        GaussianMixture(dim=0)
    with pytest.raises(ValueError, match="p"):
        GaussianMixture(dim=3, p=1.0)
    with pytest.raises(ValueError, match="sigma2"):
        GaussianMixture(dim=3, sigma2=-1.0)
    with pytest.raises(ValueError, match="direction"):
        GaussianMixture(dim=3, direction=jnp.ones(4))


# -- Curie–Weiss ------------------------------------------------------------------------------------
@pytest.mark.x64
def test_magnetization_solves_mean_field_equation():
    for theta in [1.2, 2.0, 5.0]:
        m = float(magnetization(theta))
        assert m > 0 and abs(m - math.tanh(theta * m)) < 1e-12
    assert float(magnetization(0.8)) == 0.0


KEY_FAR = jax.random.PRNGKey(7)


def _observations(d, g, n, key, theta=2.0, h=0.5):
    """``x = x1 + z / sqrt(g)``, ``x1 ~ mu``: then ``p(x | x1) ∝ exp(g x.x1)`` (field ``g``)."""
    cw = CurieWeiss(dim=d, theta=theta, h=h)
    key_s, key_z = jax.random.split(key)
    x1 = cw.sample(key_s, n)
    return x1 + jax.random.normal(key_z, x1.shape) / jnp.sqrt(g)


def _batched(method):
    """``method(g, x)`` jit-compiled and vmapped over a batch of ``x``."""
    return jax.jit(jax.vmap(method, in_axes=(None, 0)))


@pytest.mark.parametrize("d", [100, 1000])
def test_cw_saddle_quadrature_matches_dense_rule(d):
    """The saddle rule (Exact above grid_max_dim) agrees with a dense 2000-node Gauss–Legendre rule."""
    saddle = _batched(CurieWeiss(dim=d, theta=2.0, h=0.5, posterior=Saddle()).posterior_mean)
    dense = _batched(CurieWeiss(dim=d, theta=2.0, h=0.5, posterior=Grid(nodes=2000)).posterior_mean)
    worst = 0.0
    for i, g in enumerate([0.2 / math.sqrt(d), 1 / math.sqrt(d), 0.3, 1.0, 3.0]):
        x = _observations(d, g, 4, jax.random.PRNGKey(i))
        worst = max(worst, float(jnp.max(jnp.abs(saddle(g, x) - dense(g, x)))))
    assert worst < 1e-5, worst


def _series_and_direct(d, theta, h, **series):
    series = _batched(CurieWeiss(dim=d, theta=theta, h=h, posterior=PowerSum(**series)).posterior_mean)
    direct = _batched(CurieWeiss(dim=d, theta=theta, h=h, posterior=Saddle()).posterior_mean)
    return series, direct


@pytest.mark.parametrize("theta, h", [(2.0, 0.5), (1.3, -1.0), (6.0, 0.0), (0.8, 0.3)])
@pytest.mark.x64
def test_cw_power_sum_expansion_matches_direct_rule(theta, h):
    """The power-sum posterior (two passes over x) against the node-by-node saddle rule (float64).

    Both use the same Gauss–Hermite mixture rule; the expansion only changes how log w is
    evaluated, with error <= series_tol at every node, so the weights move by at most
    ``e^(2 tol) - 1`` and eta (a weighted mean of values in [-1, 1]) by at most twice that.
    """
    d, tol = 20_000, 1e-5
    series, direct = _series_and_direct(d, theta, h, series_tol=tol)
    bound = 2 * math.expm1(2 * tol)
    worst = 0.0
    for i, g in enumerate([0.2 / math.sqrt(d), 1 / math.sqrt(d), 0.03, 0.3, 1.0, 3.0, 30.0]):
        x = _observations(d, g, 4, jax.random.PRNGKey(i), theta, h)
        worst = max(worst, float(jnp.max(jnp.abs(series(g, x) - direct(g, x)))))
    assert worst < bound, (worst, bound)


def test_cw_power_sum_expansion_recentres_on_far_maxima():
    """Spins with M = 0.2 seen at g = 1: the maximum of log w sits near lam = 1.6, 0.3 away from
    the starting centre theta m, where four power sums are far from series_tol; the re-centring
    passes reach the bound, a single pass cannot (measured error 2e-2)."""
    d, theta, h, tol = 20_000, 2.0, 0.5, 1e-5
    x = jnp.where(jnp.arange(d) < 0.6 * d, 1.0, -1.0)[None] + 0.01 * jax.random.normal(KEY_FAR, (2, d))
    series, direct = _series_and_direct(d, theta, h, series_tol=tol)
    one_pass, _ = _series_and_direct(d, theta, h, series_tol=tol, max_passes=1)
    exact = direct(1.0, x)
    assert float(jnp.max(jnp.abs(series(1.0, x) - exact))) < 2 * math.expm1(2 * tol)
    assert float(jnp.max(jnp.abs(one_pass(1.0, x) - exact))) > 1e-3


def test_cw_power_sum_expansion_float32_rounding():
    """float32 against float64 at d = 1e5. Blocked sums of 1024 keep the relative rounding error
    of each power sum below (1024 + d/1024) eps32; shifting F'(lam)/d by that moves the maximum
    by that / curvature (>= 0.4 per coordinate at theta = 2) and eta by at most as much."""
    d, theta, h = 100_000, 2.0, 0.5
    series = CurieWeiss(dim=d, theta=theta, h=h).posterior_mean
    _, direct = _series_and_direct(d, theta, h)
    bound = (1024 + d / 1024) * float(jnp.finfo(jnp.float32).eps) / 0.4
    worst = 0.0
    for i, g in enumerate([1 / math.sqrt(d), 0.3, 3.0]):
        x = _observations(d, g, 2, jax.random.PRNGKey(10 + i), theta, h)
        eta32 = jax.jit(jax.vmap(series, in_axes=(None, 0)))(jnp.float32(g), x.astype(jnp.float32))
        assert eta32.dtype == jnp.float32
        worst = max(worst, float(jnp.max(jnp.abs(eta32 - direct(g, x)))))
    assert worst < bound, (worst, bound)


def test_cw_two_saddle_error_shrinks_with_dimension():
    """Mean |eta_two-saddle - eta_exact| on observations of the model itself, d = 16 .. 4096."""
    errors = {}
    for d in [16, 64, 256, 1024, 4096]:
        exact = _batched(CurieWeiss(dim=d, theta=2.0, h=0.5).posterior_mean)
        approx = _batched(CurieWeiss(dim=d, theta=2.0, h=0.5, posterior="two-saddle").posterior_mean)
        diffs = []
        # g ~ d^-1/2 is the speciation window (the modes are being chosen); g = O(1) resolves spins
        for i, g in enumerate([0.3 / math.sqrt(d), 1 / math.sqrt(d), 0.3, 1.0, 3.0]):
            x = _observations(d, g, 16, jax.random.PRNGKey(100 * i + d))
            diffs.append(float(jnp.mean(jnp.abs(approx(g, x) - exact(g, x)))))
        errors[d] = float(np.mean(diffs))
    values = [errors[d] for d in sorted(errors)]
    print("two-saddle mean abs error by d:", errors)
    assert values[-1] < values[0] / 4, errors
    assert all(b < a * 1.25 for a, b in zip(values, values[1:], strict=False)), errors


@pytest.mark.parametrize("d", [4, 9])
def test_cw_law_of_s_matches_enumeration(d):
    theta, h = 2.0, 0.7
    k, prob = magnetization_law(d, theta, h)
    states = ((np.arange(2**d)[:, None] >> np.arange(d)) & 1) * 2 - 1
    S = states.sum(axis=1)
    w = np.exp(theta * S**2 / (2 * d) + h * S / d)
    brute = np.array([w[S == kk].sum() for kk in k]) / w.sum()
    np.testing.assert_allclose(prob, brute, rtol=1e-12)


def test_cw_law_is_cheap_at_large_d_and_references_converge():
    k, prob = magnetization_law(10**7, 2.0, 0.5)
    assert abs(prob.sum() - 1) < 1e-12
    ref = CurieWeiss(dim=10**6, theta=2.0, h=0.5).reference()
    m = float(magnetization(2.0))
    w_plus = math.exp(0.5 * m) / (2 * math.cosh(0.5 * m))
    assert abs(ref["p"] - w_plus) < 1e-3 and abs(ref["m_abs"] - m) < 1e-3


@pytest.mark.parametrize("d, theta, h", [(6, 2.0, 0.7), (5, 1.5, -2.0)])
def test_cw_exact_sampler_matches_enumeration_chi_square(d, theta, h):
    """Chi-square goodness of fit of the sampled configurations (all ``2^d`` cells, not only S)
    against the law written out here by brute-force enumeration,
    ``mu(x) ∝ exp(theta S^2 / (2d) + h S / d)`` (docs/theory.md §3), at significance 1e-3. Catches
    a wrong law of S (shared by the sampler and ``magnetization_law``) and a non-uniform placement
    of the spins given S. The smallest expected cell count is > 10 (chi-square approximation)."""
    n = 20_000
    cw = CurieWeiss(dim=d, theta=theta, h=h)
    x = np.asarray(cw.sample(jax.random.PRNGKey(3), n))
    assert set(np.unique(x)) <= {-1.0, 1.0}
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=d)))  # cell j: bits of j
    S = states.sum(axis=1)
    weights = np.exp(theta * S**2 / (2 * d) + h * S / d)
    expected = n * weights / weights.sum()
    assert expected.min() > 10
    cells = ((x > 0) * (2 ** np.arange(d - 1, -1, -1))).sum(axis=1)
    counts = np.bincount(cells, minlength=2**d)
    _, pvalue = sps.chisquare(counts, expected)
    assert pvalue > 1e-3, pvalue


def test_cw_end_point_and_invalid_inputs():
    cw = CurieWeiss(dim=5, theta=2.0, h=0.3)
    x = jnp.array([0.9, -1.1, 1.0, 0.2, -0.0])
    for interp in (Linear(1.0), Linear(math.sqrt(5.0)), Trig(1.0)):
        v = cw.velocity(
            interp, jnp.asarray(1.0, jnp.float32), jnp.asarray(0.0, jnp.float32), x.astype(jnp.float32)
        )
        assert jnp.all(jnp.isfinite(v))
    with pytest.raises(ValueError, match="theta"):
        CurieWeiss(dim=5, theta=0.0)
    with pytest.raises(ValueError, match="theta"):
        CurieWeiss(dim=5, theta=0.9, posterior="two-saddle")
    with pytest.raises(ValueError, match="posterior"):
        CurieWeiss(dim=5, posterior="mean-field")
    with pytest.raises(ValueError, match="dim"):
        CurieWeiss(dim=0)
    with pytest.raises(ValueError, match="series_terms"):
        CurieWeiss(dim=5, series_terms=0)
    with pytest.raises(ValueError, match="series_tol"):
        CurieWeiss(dim=5, series_tol=0.0)


@pytest.mark.parametrize("d", [1, 31, 32, 33, 1000, 100_003])
def test_coordinate_sum_matches_float64_within_rounding_bound(d):
    """Rows of 32 summed in float32, then XLA's tree over the rows: each of the
    ``L = 1 + ceil(log_32(d / 32))`` levels adds at most 32 terms in sequence, so the error is at
    most ``32 L eps32 sum |x_i|`` (recursive-summation bound per level); also under ``vmap``."""
    x = np.random.default_rng(d).standard_normal((3, d)).astype(np.float32) + 0.5
    got = np.asarray(jax.jit(jax.vmap(coordinate_sum))(jnp.asarray(x)))
    assert got.dtype == np.float32
    exact = x.astype(np.float64).sum(axis=1)
    levels = 1 + max(math.ceil(math.log(max(d / 32, 1), 32)), 0)
    bound = 32 * levels * np.finfo(np.float32).eps * np.abs(x).astype(np.float64).sum(axis=1)
    assert np.all(np.abs(got - exact) <= bound), (got - exact, bound)
