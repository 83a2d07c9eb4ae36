"""Curie–Weiss posterior strategies (:mod:`nsjax.targets.cw_posteriors`) against independent oracles.

- brute-force enumeration of the ``2^d`` states (``d <= 12``);
- each other where their ranges overlap (``d = 100 .. 10^4``);
- a float64 adaptive quadrature (``scipy.integrate.quad``, with its error estimate) of the
  Hubbard–Stratonovich integral at ``d = 10^3 .. 10^5``.

Tolerances come from the accuracy each strategy documents (float64 throughout). The two-saddle
approximation converging to the exact posterior as ``d`` grows is
``tests/test_targets.py::test_cw_two_saddle_error_shrinks_with_dimension``.
"""

import functools
import math

import jax
import numpy as np
import pytest
from scipy import integrate, optimize

from nsjax.interpolants import Linear
from nsjax.targets import CurieWeiss, magnetization_law
from nsjax.targets.cw_posteriors import (
    POSTERIORS,
    AbstractCWPosterior,
    Enumeration,
    Exact,
    Grid,
    PowerSum,
    Saddle,
    TwoSaddle,
    as_posterior,
)

THETA, H = 2.0, 0.5
EPS = float(np.finfo(np.float64).eps)
Z_MAX = float(np.max(np.polynomial.hermite_e.hermegauss(6)[0]))  # largest of 6 Gauss–Hermite nodes
POWER_SUM = PowerSum(series_terms=10, series_tol=1e-6)  # converges from d = 10^3 (see _power_sum_tol)


@functools.cache
def _batched(strategy: AbstractCWPosterior, d: int, theta: float):
    """``strategy(d, theta, h, g, x)`` jit-compiled and vmapped over a batch of ``x``; ``theta`` a
    Python number as in production (one compile per strategy, ``d`` and ``theta``)."""
    return jax.jit(jax.vmap(lambda h, g, x: strategy(d, theta, h, g, x), in_axes=(None, None, 0)))


def _eta(strategy, d, g, x, theta=THETA, h=H):
    return np.asarray(_batched(strategy, d, theta)(h, g, x))


def _spins(d, n, seed, theta=THETA, h=H):
    """``n`` exact samples of ``mu`` in numpy (as :meth:`CurieWeiss.sample`, without its compile):
    ``S`` from its law, then a uniformly random configuration with that ``S``."""
    rng = np.random.default_rng(seed)
    k, prob = magnetization_law(d, theta, h)
    n_plus = (rng.choice(k, size=n, p=prob) + d) // 2
    return np.where(rng.random((n, d)).argsort(axis=1) < n_plus[:, None], 1.0, -1.0)


def _observations(d, g, n, seed, theta=THETA, h=H):
    """``x = x1 + z / sqrt(g)``, ``x1 ~ mu``: then ``p(x | x1) ∝ exp(g x.x1)`` (field ``g``)."""
    x1 = _spins(d, n, seed, theta, h)
    return x1 + np.random.default_rng(seed + 1).standard_normal(x1.shape) / math.sqrt(g)


def _rounding(d, g, x, theta=THETA, h=H):
    """float64 rounding of ``eta``: ``log w`` sums ``d`` terms of size ``<= 2 (theta + |a_i|)`` with
    ``32 L eps`` relative error (rows of 32 over ``L`` levels, as ``jnp.sum``: see
    ``tests/test_targets.py::test_coordinate_sum_matches_float64_within_rounding_bound``); the
    weights move by ``expm1(2 delta)`` and ``eta`` by at most twice that, in each of two results."""
    levels = 1 + max(math.ceil(math.log(max(d / 32, 1), 32)), 0)
    a = h / d + g * np.asarray(x, np.float64)
    delta = 32 * levels * EPS * np.sum(2 * (theta + np.abs(a)), axis=-1)
    return 2 * 2 * np.expm1(2 * delta)


def _grid_bound(nodes, d, theta=THETA):
    """:class:`Grid`'s documented error ``exp(-2 (nodes sigma / L)^2)`` with the narrowest width
    ``sigma = sqrt(theta/d)``; ``eta`` moves by at most twice the weights' relative error."""
    half = theta + 12 * math.sqrt(theta / d)
    return 2 * math.exp(-2 * (nodes * math.sqrt(theta / d) / half) ** 2)


def _saddle_bound(d, g, x):
    """:class:`Saddle`'s documented error estimate at 6 nodes: ``2 |eta(6) - eta(12)|``."""
    return 2 * np.max(np.abs(_eta(Saddle(nodes=6), d, g, x) - _eta(Saddle(nodes=12), d, g, x)), axis=-1)


def _power_sum_tol(strategy: PowerSum, d, sigma):
    """:class:`PowerSum`'s documented error beyond its rule's quadrature error, for peak widths
    ``sigma``; first checks that its passes converge (bound ``<= series_tol`` at every node)."""
    S = math.tanh(Z_MAX * max(sigma))
    N = strategy.series_terms
    assert d * S ** (N + 1) / ((N + 1) * (1 - S)) <= strategy.series_tol, "outside the documented range"
    return 2 * math.expm1(2 * strategy.series_tol) + S ** (strategy.mean_terms(d) + 1) / (1 - S)


def _log_w(d, theta, h, g, x):
    """``F = log w`` (up to a constant) and ``F'`` in float64 numpy, independent of the package."""
    a = h / d + g * np.asarray(x, np.float64)

    def F(lam):
        u = np.abs(lam + a)
        return -d * lam**2 / (2 * theta) + np.sum(u + np.log1p(np.exp(-2 * u)))

    def dF(lam):
        return -d * lam / theta + np.sum(np.tanh(lam + a))

    return a, F, dF


def _maxima(d, theta, h, g, x):
    """The maxima of ``w`` within 40 nats of the highest (the ones :class:`PowerSum` keeps), their
    Laplace widths and heights: sign changes of ``F'`` on a grid of ``[-theta, theta]`` (every
    critical point lies there), refined by ``brentq``."""
    a, F, dF = _log_w(d, theta, h, g, x)
    grid = np.linspace(-theta, theta, 801)
    slope = np.array([dF(lam) for lam in grid])
    cross = np.nonzero((slope[:-1] > 0) & (slope[1:] <= 0))[0]
    maxima = np.array([optimize.brentq(dF, grid[k], grid[k + 1], xtol=1e-15) for k in cross])
    sigma = 1 / np.sqrt(np.array([d / theta - np.sum(1 - np.tanh(m + a) ** 2) for m in maxima]))
    height = np.array([F(m) for m in maxima])
    keep = height >= height.max() - 40
    return maxima[keep], sigma[keep], height[keep]


# -- brute-force enumeration (d <= 12) ------------------------------------------------------------
def _enumeration_cases(d):
    """(h, g, x) as in the original enumeration test: random field h, g in (0, 3), x ~ 1.5 N(0, 1)."""
    for seed in range(4):
        key_g, key_x, key_h = jax.random.split(jax.random.PRNGKey(seed), 3)
        h = 2.0 * float(jax.random.normal(key_h))
        g = float(jax.random.uniform(key_g, (), minval=0.0, maxval=3.0))
        yield h, g, 1.5 * jax.random.normal(key_x, (6, d))


def _enumeration_error(strategy, d):
    return max(
        float(np.max(np.abs(_eta(strategy, d, g, x, h=h) - _eta(Enumeration(), d, g, x, h=h))))
        for h, g, x in _enumeration_cases(d)
    )


@pytest.mark.parametrize("d", [1, 2, 5, 8, 12])
@pytest.mark.parametrize("strategy", [Exact(), Grid(nodes=64)], ids=["exact", "grid-64"])
@pytest.mark.x64
def test_exact_and_grid_equal_enumeration(strategy, d):
    """The production posterior (Grid with 256 nodes below d = 64) and a 64-node grid: documented
    error below ``e^-28`` at ``d <= 12``, so rounding only."""
    assert _enumeration_error(strategy, d) < 1e-10


@pytest.mark.parametrize("d", [2, 12])
def test_saddle_converges_to_enumeration_in_nodes(d):
    """Below its range (non-Gaussian peaks) the saddle rule still converges as nodes grow."""
    errors = [_enumeration_error(Saddle(nodes=k, newton_steps=30), d) for k in (6, 24, 96)]
    print("saddle error by nodes 6, 24, 96:", errors)
    assert errors[1] < errors[0] and errors[2] < errors[1], errors


# -- strategies against each other (d = 100 .. 10^4) ----------------------------------------------
@pytest.mark.parametrize("d", [100, 1000, 10_000])
def test_grid_saddle_power_sum_agree(d):
    """Grid (600 nodes: documented error below ``e^-30`` up to d = 10^4), Saddle (6 nodes) and,
    from d = 10^3, PowerSum, on the model's own observations from the speciation window
    (g ~ d^-1/2) to resolved spins (g = 3)."""
    grid = Grid(nodes=600)
    for i, g in enumerate([0.3 / math.sqrt(d), 0.3, 3.0]):
        x = _observations(d, g, 2, seed=10 * i)
        eta_grid, eta_saddle = _eta(grid, d, g, x), _eta(Saddle(), d, g, x)
        saddle = _saddle_bound(d, g, x)
        floor = _rounding(d, g, x) + _grid_bound(grid.nodes, d)
        np.testing.assert_array_less(np.max(np.abs(eta_saddle - eta_grid), axis=-1), saddle + floor)
        if d >= 1000:
            eta_ps = _eta(POWER_SUM, d, g, x)
            # PowerSum's rule: 6 nodes on (nearly) the same maxima, so the saddle estimate bounds it too
            sigma = max(_maxima(d, THETA, H, g, xb)[1].max() for xb in np.asarray(x))
            tol = _power_sum_tol(POWER_SUM, d, [sigma]) + 2 * saddle + floor
            np.testing.assert_array_less(np.max(np.abs(eta_ps - eta_saddle), axis=-1), tol)
            np.testing.assert_array_less(np.max(np.abs(eta_ps - eta_grid), axis=-1), tol)


# -- adaptive quadrature of the Hubbard–Stratonovich integral (d = 10^3 .. 10^5) -------------------
def _quad_oracle(d, theta, h, g, x, coords):
    """``eta_i``, ``i in coords``, by ``scipy.integrate.quad`` (relative tolerance 1e-12) of
    ``int w(lam) tanh(lam + a_i) / int w(lam)``, ``log w = -d lam^2/(2 theta) + sum_i log cosh(lam + a_i)``,
    over ``[-theta - 1, theta + 1]`` with break points at the maxima and ``±1, 3, 8`` widths around
    them. Returns ``eta``, the quadrature's error bound on it, and the widths of the maxima."""
    a, F, _ = _log_w(d, theta, h, g, x)
    maxima, sigma, height = _maxima(d, theta, h, g, x)
    lo, hi = -theta - 1.0, theta + 1.0
    breaks = np.concatenate([maxima + k * sigma for k in (-8, -3, -1, 0, 1, 3, 8)])
    breaks = np.unique(breaks[(breaks > lo) & (breaks < hi)])

    @functools.cache
    def w(lam):  # the integrals share most of their nodes: one O(d) pass per node
        return np.exp(F(lam) - height.max())

    def quad(f):
        return integrate.quad(f, lo, hi, points=breaks, limit=1000, epsabs=0.0, epsrel=1e-12)

    Z, err_Z = quad(w)
    eta, err = [], []
    for i in coords:
        N, err_N = quad(lambda lam, i=i: w(lam) * np.tanh(lam + a[i]))
        eta.append(N / Z)
        err.append((err_N + abs(N) / Z * err_Z) / Z)
    return np.array(eta), np.array(err), sigma


ORACLE_CASES = {
    1000: (Saddle(), POWER_SUM),
    10_000: (Saddle(), POWER_SUM),
    100_000: (Exact(), Saddle()),  # Exact: PowerSum at its defaults
}


@pytest.mark.parametrize("d", sorted(ORACLE_CASES))
def test_saddle_and_power_sum_match_adaptive_quadrature(d):
    """Observations ``I_tau = tau x1 + (1 - tau) z`` of the linear interpolant at three ``tau``
    (``g = tau/(1 - tau)^2``: ``~ d^-1/2``, 0.3, 3.75); four coordinates of the first of two
    observations (two as in the pair test, whose compiled functions serve) against the oracle."""
    interp, coords = Linear(1.0), [0, 1, 2, 3]
    target = CurieWeiss(dim=d, theta=THETA, h=H)
    for i, tau in enumerate([1 / math.sqrt(d), 0.2, 0.6]):
        noise = np.random.default_rng(100 + i).standard_normal((2, d))
        x = tau * _spins(d, 2, seed=200 + i) + (1 - tau) * noise
        g = float(target.observation_field(interp, tau, 1 - tau))
        eta, err, sigma = _quad_oracle(d, THETA, H, g, x[0], coords)
        saddle = _saddle_bound(d, g, x)[0]
        floor = _rounding(d, g, x)[0] + err.max()
        for strategy in ORACLE_CASES[d]:
            got = _eta(strategy, d, g, x)[0, coords]
            rule = strategy.branch(d) if isinstance(strategy, Exact) else strategy
            tol = saddle + floor
            if isinstance(rule, PowerSum):  # its own 6-node rule, bounded like Saddle's
                tol += _power_sum_tol(rule, d, sigma) + saddle
            assert np.max(np.abs(got - eta)) < tol, (strategy, tau, got - eta, tol)


# -- the dispatcher, the aliases, the knobs --------------------------------------------------------
def test_exact_dispatches_on_dimension():
    exact = Exact()
    assert exact.branch(64) is exact.grid and exact.branch(65) is exact.saddle
    assert exact.branch(9_999) is exact.saddle and exact.branch(10_000) is exact.power_sum
    # the grid wins where the ranges overlap, as before the split
    assert Exact(grid_max_dim=100, series_min_dim=0).branch(100) == Grid()
    assert Exact(grid_max_dim=0, series_min_dim=0).branch(1) == PowerSum()
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 80))
    np.testing.assert_array_equal(_eta(exact, 80, 0.5, x), _eta(Saddle(), 80, 0.5, x))


@pytest.mark.x64
def test_target_uses_its_strategy():
    """``CurieWeiss(..., posterior=s).denoise`` is ``s`` at the observation field ``g(tau)``."""
    d, interp, tau = 80, Linear(1.0), 0.4
    x = jax.random.normal(jax.random.PRNGKey(1), (d,))
    g = 0.4 / 0.6**2
    for strategy in (Saddle(), TwoSaddle()):
        target = CurieWeiss(dim=d, theta=THETA, h=H, posterior=strategy)
        eta, _ = jax.jit(target.denoise)(interp, tau, 1 - tau, x)
        np.testing.assert_allclose(eta, _eta(strategy, d, g, x[None])[0], rtol=0, atol=1e-14)


def test_string_aliases_and_knob_keywords_build_strategies():
    assert CurieWeiss(8).posterior == Exact()
    assert CurieWeiss(8, 2.0, 0.5, "exact").posterior.name == "exact"
    assert CurieWeiss(8, posterior="two-saddle").posterior == TwoSaddle()
    assert {name: cls().name for name, cls in POSTERIORS.items()} == {n: n for n in POSTERIORS}
    assert CurieWeiss(dim=8, theta=2.0, h=0.5, posterior=Saddle(nodes=8)).posterior == Saddle(nodes=8)
    # the old CurieWeiss keywords configure the default exact posterior
    built = CurieWeiss(
        8,
        nodes=8,
        newton_steps=5,
        grid_max_dim=0,
        grid_nodes=100,
        series_min_dim=7,
        series_terms=5,
        series_tol=1e-4,
        max_passes=3,
    ).posterior
    assert built == Exact(
        grid_max_dim=0,
        series_min_dim=7,
        grid=Grid(nodes=100),
        saddle=Saddle(nodes=8, newton_steps=5),
        power_sum=PowerSum(nodes=8, series_terms=5, series_tol=1e-4, max_passes=3),
    )
    assert as_posterior("exact") == Exact() and as_posterior(Saddle()) == Saddle()
    # strategies hold static fields only: hashable (a cache key), no array leaves
    assert hash(CurieWeiss(8).posterior) == hash(Exact())
    assert jax.tree.leaves(built) == []


def test_invalid_strategies_and_knobs():
    for make, knob in [
        (lambda: Grid(nodes=0), "nodes"),
        (lambda: Saddle(nodes=0), "nodes"),
        (lambda: Saddle(newton_steps=0), "newton_steps"),
        (lambda: PowerSum(nodes=2.5), "nodes"),
        (lambda: PowerSum(series_terms=0), "series_terms"),
        (lambda: PowerSum(series_tol=0.0), "series_tol"),
        (lambda: PowerSum(max_passes=0), "max_passes"),
        (lambda: Exact(grid_max_dim=-1), "grid_max_dim"),
        (lambda: Exact(series_min_dim=1.5), "series_min_dim"),
        (lambda: Exact(saddle=Grid()), "saddle"),
        (lambda: CurieWeiss(5, series_terms=0), "series_terms"),
        (lambda: CurieWeiss(5, series_tol=0.0), "series_tol"),
        (lambda: CurieWeiss(5, posterior="two-saddle", nodes=8), "nodes"),
        (lambda: CurieWeiss(5, posterior=Saddle(), grid_nodes=8), "grid_nodes"),
        (lambda: CurieWeiss(5, posterior="mean-field"), "posterior"),
        (lambda: CurieWeiss(5, posterior=None), "posterior"),
        (lambda: CurieWeiss(5, theta=0.9, posterior=TwoSaddle()), "theta"),
        (lambda: CurieWeiss(17, posterior="enumeration"), "dim <= 16"),
    ]:
        with pytest.raises(ValueError, match=knob):
            make()
    with pytest.raises(ValueError, match=r"must be an integer >= 1"):
        Grid(nodes=0)
    with pytest.raises(ValueError, match=r"\(0.0, inf\)"):
        PowerSum(series_tol=-1.0)
