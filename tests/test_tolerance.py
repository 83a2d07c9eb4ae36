"""The tolerance study (nsjax.experiments.tolerance): exact features against stratified particles,
the dilated-VE Euler floor law, N(eps) and the trig interpolant's dilations."""

import jax
import numpy as np
import pytest

from nsjax.experiments import builds, config_for
from nsjax.experiments.tolerance import (
    EPS,
    _params,
    _references,
    _rows,
    exact_features,
    floor_prediction,
    heun_prediction,
    steps_to_eps,
)

jax.config.update("jax_enable_x64", True)
CFG = config_for("quick")
STEPS = [64, 256, 512, 1024]


@pytest.fixture(scope="module")
def linear_euler():
    rows = [("ve-dilated", 1e12, 3.0, 0.25), ("vp-dilated", 1e3, 3.0, 0.25), ("ve-dilated", 1e3, 3.0, 0.25)]
    return rows, exact_features(builds.reduced_paper_build, _params(rows, CFG), STEPS, "euler")


@pytest.mark.x64
def test_exact_features_equal_stratified_particles(linear_euler):
    """Stratified quantiles z_i = Phi^-1((i + 1/2)/n) are a midpoint rule in probability: p_hat is
    off by at most one cell (1/n) and sigma2_hat by the cell holding the jump of sign(u_1),
    mass 1/n times (2R)^2/d = 4/n, plus O(1/n^2) elsewhere."""
    rows, exact = linear_euler
    n = 4096
    grid = builds.paper_grid(("vp-dilated", "ve-dilated"), [1e3], CFG)
    result = builds.sweep(builds.reduced_paper_build, grid.params, builds.quantiles(n), steps=[64])
    for g, name in enumerate(("vp-dilated", "ve-dilated")):
        stats = result.point(0, g)
        p_hat = np.mean(stats["overlap"] > 0)
        sigma2_hat = np.mean(stats["sq_dev"])
        j = rows.index((name, 1e3, 3.0, 0.25))
        assert abs(exact["p_hat"][0, j] - p_hat) <= 1 / n
        assert abs(exact["sigma2_hat"][0, j] - sigma2_hat) <= 4 / n
        assert exact["valid"][0, j] and exact["crossings"][0, j] == 1


@pytest.mark.x64
def test_dilated_ve_euler_floor_law_at_large_d(linear_euler):
    """sigma2_hat/sigma2 = a - b/N + c/N^2 at d = 1e12: Richardson from (N, 2N) gives
    a + O(c/N^2) and b + O(c/N); with |c| <= 100 (a bound on the remainder) and N = 512,
    a within 2e-4 and b within 3 % of the derived a = kappa^2/(kappa^2+sigma2), b."""
    _, exact = linear_euler
    ratio = exact["sigma2_hat"][:, 0] / 0.25
    r1, r2 = ratio[STEPS.index(512)], ratio[STEPS.index(1024)]
    a_est, b_est = 2 * r2 - r1, 2 * 512 * (r2 - r1)
    a, b = floor_prediction(3.0, 0.25)
    assert abs(a_est - a) <= 2e-4, (a_est, a)
    assert abs(b_est / b - 1) <= 0.03, (b_est, b)
    assert a == pytest.approx(9 / 9.25)


@pytest.mark.x64
def test_steps_to_eps_needs_the_tolerance_to_hold_from_n_on():
    """A lucky zero crossing of the error does not count, and N(eps) never decreases as eps shrinks."""
    steps = [4, 8, 16, 32, 64]
    error = np.array([0.5, 0.001, 0.3, 0.05, 0.004])
    assert steps_to_eps(steps, error, 0.01) == 64
    assert steps_to_eps(steps, error, 0.1) == 32
    assert steps_to_eps(steps, error, 0.001) is None
    assert steps_to_eps(steps, np.array([0.5, np.nan, 0.01, 0.01, 0.01]), 0.02) == 16
    found = [steps_to_eps(steps, error, e) for e in EPS]
    reached = [n for n in found if n is not None]
    assert reached == sorted(reached) and found[: len(reached)] == reached


@pytest.mark.x64
def test_trig_dilations_at_two_dimensions():
    """On the trig interpolant dilated VP keeps d-free errors (a d -> inf limit: phase 2 starts at
    tau = kappa/sqrt(d), so the 1e6 and 1e10 errors agree to O(kappa/sqrt(d)); bound 10 kappa/sqrt(d)
    = 0.03 relative), while the trig dilated VE's sigma2 excess grows like d/N (the last phase-1
    step falls from ~2 sqrt(d/N) to kappa): x1e4 in d gives more than x100."""
    rows = _rows(("vp-dilated", "ve-dilated"), (1e6, 1e10), 3.0, 0.25)
    out = exact_features(builds.reduced_paper_trig_build, _params(rows, CFG), [64], "euler")
    p_ref, s_ref = _references(rows, CFG.p)
    p_err = out["p_hat"][0] - p_ref
    s_err = out["sigma2_hat"][0] / s_ref - 1
    bound = 10 * 3.0 / np.sqrt(1e6)
    assert abs(p_err[1] - p_err[0]) <= bound * abs(p_err[0])
    assert abs(s_err[1] - s_err[0]) <= bound * abs(s_err[0])
    assert s_err[2] > 0 and s_err[3] > 100 * s_err[2]


@pytest.mark.x64
def test_heun_prediction_matches_the_derived_growth():
    """x >> kappa: sigma2_hat/sigma2 -> sigma2^2 d / (N^2 (kappa^2 + sigma2)^3)."""
    d, n = 1e20, 16
    assert heun_prediction(3.0, 0.25, d, n) == pytest.approx(0.25**2 * d / (n**2 * 9.25**3), rel=1e-3)
