"""The Curie–Weiss within-mode spread ``mean_i (x_i - M)^2`` (docs/theory.md §6, §7).

Reference ``spread_ref = 1 - E[M^2]`` over the exact law of ``S`` (for spins
``mean_i (x_i - M)^2 = 1 - M^2`` exactly); limit ``1 - m^2`` with ``m = tanh(theta m)``.

The ``1/d`` correction used below (derived here by Laplace's method on the law of ``S``): in the
``+`` mode ``log P(M) = d phi(M) + g(M) + const`` with ``phi(M) = theta M^2/2 - H((1+M)/2)`` and
``g(M) = hM - log(1 - M^2)/2`` (the binomial's Stirling prefactor), so ``Var M = chi/d`` with
``chi = (1 - m^2)/(1 - theta(1 - m^2))`` and ``E[M] - m = (chi g'(m) + chi^2 phi'''(m)/2)/d``,
``phi'''(m) = -2m/(1 - m^2)^2``; the ``-`` mode is the mirror with ``-h``, the modes weigh
``(1 ± tanh(hm))/2``. Hence ``E[M^2] = m^2 + c_1/d + O(1/d^2)`` with
``c_1 = chi + 2m chi (h tanh(hm) + m/(1 - m^2)) - 2 m^2 chi^2/(1 - m^2)^2``.
"""

import itertools
import math

import jax
import numpy as np
import pytest

import nsjax
from nsjax.registry import preset
from nsjax.targets import CurieWeiss

H_PAPER = 0.5 * math.log(4)


def _m64(theta: float) -> float:
    """``m = tanh(theta m)`` in float64 (Newton from 1)."""
    m = 1.0
    for _ in range(100):
        m -= (m - math.tanh(theta * m)) / (1 - theta / math.cosh(theta * m) ** 2)
    return m


@pytest.mark.parametrize(
    ("d", "theta", "h"), [(1, 2.0, 0.3), (5, 2.0, H_PAPER), (8, 0.7, -1.2), (12, 2.0, H_PAPER)]
)
def test_spread_reference_matches_enumeration(d, theta, h):
    """Brute force over all ``2^d`` configurations, the spread taken as ``mean_i (x_i - M)^2``
    itself (not ``1 - M^2``); float64 sums of ``2^d <= 4096`` terms: rounding ~1e-13."""
    x = np.array(list(itertools.product((-1.0, 1.0), repeat=d)))
    s = x.sum(axis=1)
    log_w = theta * s**2 / (2 * d) + h * s / d
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    mag = x.mean(axis=1)
    spread = ((x - mag[:, None]) ** 2).mean(axis=1)
    ref = CurieWeiss(dim=d, theta=theta, h=h).reference()
    assert ref["spread"] == pytest.approx(float(w @ spread), abs=1e-12)
    assert ref["m_abs"] == pytest.approx(float(w @ np.abs(mag)), abs=1e-12)


def test_exact_samples_give_the_reference_within_sampling_error():
    """Exact spin samples through ``statistics`` and ``estimate``: ``|hat - ref| <= 4 stderr``
    (false-alarm probability 6e-5); the per-particle spread is ``1 - M^2`` up to float32 rounding."""
    target = CurieWeiss(dim=64, theta=2.0, h=H_PAPER)
    x = target.sample(jax.random.PRNGKey(3), 4000)
    stats = jax.vmap(target.statistics)(x)
    mag, spread = np.asarray(stats["magnetization"], np.float64), np.asarray(stats["spread"], np.float64)
    np.testing.assert_allclose(spread, 1 - mag**2, atol=1e-6)
    f = nsjax.estimate(target, stats)
    assert f["spread_ref"] == target.reference()["spread"]
    assert f["spread_error"] == abs(f["spread_hat"] / f["spread_ref"] - 1)
    assert abs(f["spread_hat"] - f["spread_ref"]) <= 4 * f["spread_stderr"]


@pytest.mark.parametrize("h", [0.0, H_PAPER, -1.0])
def test_spread_reference_tends_to_mean_field_limit(h):
    """``spread_ref = 1 - m^2 - c_1/d + O(1/d^2)`` (module docstring): ``|d (lim - ref) - c_1|``
    shrinks like ``1/d`` (at most ``10/d``: the measured ``d^2`` coefficient is below 4), and
    ``|ref - lim| <= 1/d`` (``|c_1| < 1``) at every ``d``."""
    theta = 2.0
    m = _m64(theta)
    chi = (1 - m * m) / (1 - theta * (1 - m * m))
    c1 = chi + 2 * m * chi * (h * math.tanh(h * m) + m / (1 - m * m)) - 2 * m * m * chi**2 / (1 - m * m) ** 2
    lim = 1 - m * m
    for d in (1000, 10_000, 100_000):
        target = CurieWeiss(dim=d, theta=theta, h=h)
        ref = target.reference()["spread"]
        assert abs(ref - lim) <= 1 / d
        assert abs(d * (lim - ref) - c1) <= 10 / d
    assert float(target.spread_limit()) == pytest.approx(lim, rel=1e-6)  # m in float32


def _spread(schedule: str, steps: int):
    d = 10_000
    target = CurieWeiss(dim=d, theta=2.0, h=H_PAPER, posterior="two-saddle")
    interpolant, sched = preset(schedule, d, kappa=3.0)
    result = nsjax.sample(target, interpolant, sched, jax.random.PRNGKey(0), 16, steps=steps)
    return nsjax.estimate(target, result.statistics)


def test_constant_ve_collapses_the_spread_dilated_ve_keeps_it():
    """d = 1e4, Euler. Constant VE's last step returns the posterior mean at per-coordinate
    noise ``s = sqrt(d)/N``; for ``s >> 1`` each spin's mean is ``tanh(lambda + y_i/s^2)`` with
    ``y_i/s^2`` of spread ``1/s``, so ``spread_hat ~ (1 - m^2)^2/s^2``, i.e. ``spread_hat/ref ~
    (1 - m^2)/s^2 = 8e-4`` at ``N = 10`` (``s = 10``): asserted below 0.1. Dilated VE resolves the
    spins in its second phase: within ``SPREAD_TOL`` plus 4 standard errors at ``N = 100``."""
    from nsjax.experiments.config import SPREAD_TOL

    ve = _spread("ve", 10)
    assert ve["spread_hat"] < 0.1 * ve["spread_ref"], ve
    dil = _spread("ve-dilated", 100)
    assert dil["spread_error"] <= SPREAD_TOL + 4 * dil["spread_stderr"] / dil["spread_ref"], dil


def _cw_row(schedule, n, p_hat, spread_ratio, particles=200, spread_se=0.002):
    from nsjax.experiments.studies import FeatureRow

    p_ref, s_ref = 0.79, 0.083
    f = {
        "p_hat": p_hat,
        "p_ref": p_ref,
        "p_stderr": 0.0,  # a sample's own: 0 when every particle picks one mode
        "p_error": abs(p_hat - p_ref),
        "spread_hat": spread_ratio * s_ref,
        "spread_ref": s_ref,
        "spread_stderr": spread_se,
        "spread_error": abs(spread_ratio - 1),
        "particles": particles,
    }
    return FeatureRow(schedule, "heun", 1e4, n, 2.0 * n, 0, f)


def test_cw_dichotomy_verdicts_come_from_the_rows():
    """N: the largest table N below sqrt(d)/kappa = 33.3 at d = 1e4, i.e. 20 (rows at 50 are
    ignored); p ok within 0.01 + 2 binomial standard errors sqrt(p(1-p)/n) = 0.0288 (200
    particles), plus 0.01: 0.0676; spread ok within SPREAD_TOL + 2 stderr/ref."""
    from nsjax.experiments.config import SPREAD_TOL, config_for
    from nsjax.experiments.studies import Dichotomy, ParticleStudy, cw_dichotomy
    from nsjax.experiments.verdicts import dichotomy_verdict

    slack = SPREAD_TOL + 2 * 0.002 / 0.083
    rows = (
        _cw_row("vp", 20, 1.0, 1.0),  # loses p, keeps the spread: as claimed
        _cw_row("ve", 20, 0.79 + 0.0675, 1 - slack + 1e-3),  # just inside both: NOT as claimed
        _cw_row("ve", 50, 0.79, 1e-3),  # another N: ignored
        _cw_row("vp-dilated", 20, 0.79 + 0.0677, 1.0),  # just outside p: NOT as claimed
        _cw_row("ve-dilated", 20, 0.80, 1 + slack + 1e-3),  # misses the spread
    )
    study = ParticleStudy(target="cw", rows=rows, steps_to_tolerance={}, timings={})
    cw = cw_dichotomy(config_for("default"), study)
    assert (cw.d, cw.N, cw.solver, cw.particles) == (1e4, 20, "heun", 200)
    assert (cw.rows["vp"].p_ok, cw.rows["vp"].spread_ok) == (False, True)
    assert (cw.rows["ve"].p_ok, cw.rows["ve"].spread_ok) == (True, True)
    assert (cw.rows["vp-dilated"].p_ok, cw.rows["ve-dilated"].spread_ok) == (False, False)
    assert dict(cw.agrees) == {"vp": True, "ve": False, "vp-dilated": False}
    text = dichotomy_verdict(Dichotomy(d=1e6, N=200, solver="heun", rows={}, agrees={}, cw=cw))
    assert "vp as claimed, ve NOT as claimed, vp-dilated NOT as claimed" in text
    assert "dilated VE misses spread" in text
    assert cw_dichotomy(config_for("default"), None) is None
