"""The standard schedules split (issue 12, item 4): start options and rescaled schedules against
their closed forms, and the study's attribution and results.json form.

Closed forms are computed here in mpmath from the schedules' definitions (DDPM's ``abar_n`` is the
product itself), independently of :mod:`nsjax.schedules`. Sampling tolerances are 4 standard
errors of the estimator (false-failure rate ~6e-5 per check).
"""

import math

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

from nsjax import schedules as S
from nsjax.experiments import builds, schema
from nsjax.experiments.results import to_plain
from nsjax.experiments.standard_split import StandardSplitStudy, attribution, report_lines
from nsjax.interpolants import make_interpolant
from nsjax.reduction import ReducedGM
from nsjax.start import STARTS, MarginalStart, start_signal, with_start
from nsjax.sweeps import QuantileReducedGM, normal_quantiles
from nsjax.systems import Particles
from nsjax.targets import GaussianMixture

mp.mp.dps = 40


def _ddpm_abar(T=1000, beta_start=1e-4, beta_end=0.02):
    betas = [mp.mpf(beta_start) + (mp.mpf(beta_end) - mp.mpf(beta_start)) * k / (T - 1) for k in range(T)]
    out, acc = [], mp.mpf(1)
    for b in betas:
        acc *= 1 - b
        out.append(acc)
    return out  # abar_n, n = 1..T


def test_zero_snr_ddpm_table_matches_lin_et_al_formula():
    """``sqrt(abar'_n) = sqrt(abar_1) (sqrt(abar_n) - sqrt(abar_T)) / (sqrt(abar_1) - sqrt(abar_T))``
    at the integer timesteps; ends exact: ``abar'_T = 0`` (tau_min = 0), ``abar'_1 = abar_1``."""
    with jax.enable_x64(True):
        zero = S.ZeroSNR(S.DDPM())
        abar = _ddpm_abar()
        a_T, a_1 = mp.sqrt(abar[-1]), mp.sqrt(abar[0])
        n = np.array([1, 2, 10, 100, 500, 900, 990, 999, 1000])
        got = np.asarray(zero.alpha_bar(jnp.asarray(n, jnp.float64)))
        want = np.array([float((a_1 * (mp.sqrt(abar[k - 1]) - a_T) / (a_1 - a_T)) ** 2) for k in n])
        # DDPM's continuation of log abar agrees with the product to ~1e-6 relative (its docstring;
        # test_schedule_end_points); the rescaling maps that to <= 1e-6 absolute in abar'
        np.testing.assert_allclose(got[:-1], want[:-1], rtol=2e-6, atol=1e-9)
        assert got[-1] == 0.0
        tau0, tau0_c = zero(jnp.asarray(0.0))
        assert float(tau0) == 0.0 and float(tau0_c) == 1.0
        # tau_max unchanged: SNR matching of abar_1 = 1 - beta_start (c = 1)
        a, sig = mp.sqrt(1 - mp.mpf("1e-4")), mp.sqrt(mp.mpf("1e-4"))
        tau1, tau1_c = zero(jnp.asarray(1.0))
        np.testing.assert_allclose(float(tau1_c), float(sig / (sig + a)), rtol=1e-6)
        np.testing.assert_allclose(float(tau1), float(a / (sig + a)), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_zero_snr_vpsde_ends_and_midpoint(dtype):
    """VP-SDE: ``log abar(s) = -0.1 s - 9.95 s^2``, ``s: 1 -> 1e-3``; rescaled ends ``abar'(1) = 0``,
    ``abar'(eps) = abar(eps)``, and the formula at ``s = 1/2`` (sampler ``t`` with ``s(t) = 1/2``).
    Relative tolerance: float64 1e-12 (a handful of operations), float32 2e-5 (the test of the
    end points' float32 bound)."""
    rtol = 1e-12 if dtype == jnp.float64 else 2e-5
    with jax.enable_x64(True):
        zero = S.ZeroSNR(S.VPSDE())
        abar = lambda s: mp.exp(-mp.mpf("0.1") * s - mp.mpf("9.95") * s**2)  # noqa: E731
        a_T, a_0 = mp.sqrt(abar(1)), mp.sqrt(abar(mp.mpf("1e-3")))
        t_half = (1 - mp.mpf("0.5")) / (1 - mp.mpf("1e-3"))  # s(t) = eps + (1 - t)(1 - eps) = 1/2
        for t, s in ((0.0, mp.mpf(1)), (float(t_half), mp.mpf("0.5")), (1.0, mp.mpf("1e-3"))):
            a = a_0 * (mp.sqrt(abar(s)) - a_T) / (a_0 - a_T)
            sig = mp.sqrt(1 - a**2)
            tau, tau_c = zero(jnp.asarray(t, dtype))
            assert tau.dtype == dtype
            if t == 0.0:
                assert float(tau) == 0.0
            else:
                np.testing.assert_allclose(float(tau), float(a / (a + sig)), rtol=rtol)
            np.testing.assert_allclose(float(tau_c), float(sig / (a + sig)), rtol=rtol)


def test_zero_snr_and_start_reject_bad_values():
    with pytest.raises(ValueError, match="base must be a DDPM or VPSDE"):
        S.ZeroSNR(S.EDM(noise_scale=10.0))
    gm = GaussianMixture(dim=4, p=0.8, sigma2=0.25)
    interpolant = make_interpolant("linear", 1.0)
    for bad in ("data", "Marginal", None, 1):
        with pytest.raises(ValueError, match=r"start must be one of \('noise', 'marginal'\)"):
            with_start(gm, interpolant, S.DDPM(), bad)
    assert STARTS == ("noise", "marginal")
    assert with_start(gm, interpolant, S.DDPM(), "noise") == Particles(gm)


def test_start_signal_is_tau_min_of_the_closed_forms():
    """``beta(tau_min) = tau_min`` (linear interpolant): DDPM from the product ``abar_T``; VE-SDE
    at ``sigma_max = 100 sqrt(d)`` (noise ``sqrt(sigma_max^2 - sigma_min^2)``, ``c = sqrt(d)``)."""
    with jax.enable_x64(True):
        a = mp.sqrt(_ddpm_abar()[-1])
        want = a / (a + mp.sqrt(1 - a**2))
        got = start_signal(make_interpolant("linear", 1.0), S.DDPM())
        np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
        d = 1e6
        c = math.sqrt(d)
        smax = builds.SPLIT_SIGMA_FACTOR * c
        noise = mp.sqrt(mp.mpf(smax) ** 2 - mp.mpf("0.01") ** 2)
        got = start_signal(make_interpolant("linear", c), S.VESDE(noise_scale=c, sigma_max=smax))
        np.testing.assert_allclose(float(got), float(c / (noise + c)), rtol=1e-12)


def _exact_u_moments(p, sigma2, d, signal, scale):
    """Mean and variance of ``u(0) = signal (s |r| + sigma w) + scale z``, ``P(s = 1) = p``."""
    D = scale**2 + sigma2 * signal**2
    m = signal * math.sqrt(d)
    return (2 * p - 1) * m, D + m**2 * (1 - (2 * p - 1) ** 2), D


def test_marginal_start_reduced_gm_matches_the_exact_law():
    """Random reduced particles: mean and variance of ``u(0)`` and the mean of ``q`` against the
    exact marginal, within 4 standard errors (n = 10000)."""
    with jax.enable_x64(True):
        p, sigma2, d, signal, scale, n = 0.8, 0.25, 400, 0.1, 0.9, 10000
        system = MarginalStart(ReducedGM(GaussianMixture(dim=d, p=p, sigma2=sigma2)), signal)
        keys = jax.random.split(jax.random.PRNGKey(3), n)
        state = jax.vmap(lambda k: system.init(k, scale, jnp.float64))(keys)
        u, q = np.asarray(state.u), np.asarray(state.q)
        mean, var, D = _exact_u_moments(p, sigma2, d, signal, scale)
        assert abs(u.mean() - mean) <= 4 * math.sqrt(var / n)
        # var of the sample variance: (mu4 - var^2)/n; bound mu4 <= 3 (D + m^2)^2
        m2 = D + (signal * math.sqrt(d)) ** 2
        assert abs(u.var() - var) <= 4 * math.sqrt(3 * m2**2 / n)
        assert abs(q.mean() - D * (d - 1)) <= 4 * D * math.sqrt(2 * (d - 1) / n)
        assert np.all(np.asarray(state.g) == 1.0)


def test_marginal_start_particles_match_the_exact_law():
    """Full GM particles: per-coordinate mean ``(2p - 1) signal`` and the variance of ``r.x/|r|``."""
    with jax.enable_x64(True):
        p, sigma2, d, signal, scale, n = 0.3, 2.0, 16, 0.5, 0.7, 20000
        gm = GaussianMixture(dim=d, p=p, sigma2=sigma2)
        system = with_start(gm, make_interpolant("linear", 1.0), S.Constant(), "marginal")
        assert isinstance(system, MarginalStart)
        system = MarginalStart(system.system, signal)
        keys = jax.random.split(jax.random.PRNGKey(5), n)
        x = np.asarray(jax.vmap(lambda k: system.init(k, scale, jnp.float64))(keys))
        u = x.sum(1) / math.sqrt(d)
        mean, var, D = _exact_u_moments(p, sigma2, d, signal, scale)
        assert abs(u.mean() - mean) <= 4 * math.sqrt(var / n)
        m2 = D + (signal * math.sqrt(d)) ** 2
        assert abs(u.var() - var) <= 4 * math.sqrt(3 * m2**2 / n)
        perp = x - x.mean(1, keepdims=True)  # orthogonal to r: variance D per remaining coordinate
        assert abs((perp**2).sum(1).mean() / (d - 1) - D) <= 4 * D * math.sqrt(2 / ((d - 1) * n))


def test_marginal_start_quantiles_are_stratified_and_exact():
    """Quantile particles: ``u(0)`` is the inverse CDF of the two-mode law at ``Phi(z)``, so its
    empirical CDF is within ``1/n`` of the exact one everywhere; ``signal = 0`` gives exactly
    ``scale z`` (the shipped start)."""
    from scipy.stats import norm

    with jax.enable_x64(True):
        p, sigma2, d, scale, n = 0.8, 0.25, 1e4, 1.0, 512
        base = QuantileReducedGM(GaussianMixture(dim=2, p=p, sigma2=sigma2), dim=d)
        z = normal_quantiles(n)
        init = lambda s: jax.vmap(lambda zi: MarginalStart(base, s).init(zi, scale, jnp.float64))(z)  # noqa
        noise = init(0.0)
        np.testing.assert_array_equal(np.asarray(noise.u), scale * z)
        signal = 0.03  # tau_min sqrt(d) = 3: modes well apart
        state = init(signal)
        u = np.sort(np.asarray(state.u))
        D = scale**2 + sigma2 * signal**2
        m = signal * math.sqrt(d)
        cdf = p * norm.cdf((u - m) / math.sqrt(D)) + (1 - p) * norm.cdf((u + m) / math.sqrt(D))
        np.testing.assert_allclose(cdf, (np.arange(n) + 0.5) / n, atol=1e-9)
        np.testing.assert_allclose(np.asarray(state.q), D * (d - 1), rtol=1e-14)


def _ddpm_build(point):
    """DDPM on the quantile reduction, started from the marginal (``point["marginal"] = 1``) or
    pure noise (0): both in one compiled sweep."""
    gm = GaussianMixture(dim=2, p=0.8, sigma2=0.25)
    interpolant, schedule = make_interpolant("linear", 1.0), S.DDPM()
    signal = point["marginal"] * start_signal(interpolant, schedule)
    return MarginalStart(QuantileReducedGM(gm, dim=point["d"]), signal), interpolant, schedule


def test_marginal_start_rescues_ddpm_where_the_shipped_start_fails():
    """d = 1e6 (dropped signal 6.4 start-noise units), DDPM, Heun, 128 steps (the study's N), 256 quantiles: the
    exact start meets |p_hat - p| <= 0.01 (quadrature error <= 1/512) and
    |sigma2_hat/sigma^2 - 1| <= 0.02; the shipped start misses p by far (it starts symmetric
    where the exact law is not: p_hat near 1/2, error ~0.3)."""
    from nsjax.features import estimate
    from nsjax.solvers import make_solver
    from nsjax.sweeps import sweep

    gm = GaussianMixture(dim=10**6, p=0.8, sigma2=0.25)
    with jax.enable_x64(True):
        result = sweep(_ddpm_build, {"marginal": [0.0, 1.0], "d": [1e6, 1e6]}, normal_quantiles(256),
                       steps=[128], solver=make_solver("heun"))
        shipped, marginal = (estimate(gm, result.point(0, g), allow_empty=True) for g in range(2))
    assert marginal["p_error"] <= 0.01 and marginal["sigma2_error"] <= 0.02, marginal
    assert shipped["p_error"] > 0.1, shipped


def _synthetic(steps):
    keys = list(steps)
    return StandardSplitStudy(
        dims=(1e3, 1e6),
        max_steps=4096,
        solvers=("heun",),
        steps_to_tolerance=steps,
        slope={k: None for k in keys},
        final_errors={k: {"1000": (0.1, float("nan")), "1000000": (0.2, 0.0)} for k in keys},
        signal_to_noise={"ddpm": {"1000": 0.2, "1000000": 6.4}},
        attribution={"ddpm/heun": "start"},
        timings={},
    )


def test_attribution_separates_start_point_from_allocation():
    miss = {"1000": None, "1000000": None}
    ok = {"1000": 128, "1000000": 128}
    grows = {"1000": 128, "1000000": 4096}
    def steps(shipped, marginal, rescaled):
        return {"ddpm-shipped/heun": shipped, "ddpm-marginal/heun": marginal, "ddpm-rescaled/heun": rescaled}
    slope = lambda s: {k: (0.5 if v == grows else 0.0) for k, v in s.items()}  # noqa: E731
    for args, want in (
        ((miss, ok, ok), "start"),
        ((miss, ok, grows), "both"),
        ((miss, ok, miss), "both"),
        ((ok, ok, grows), "allocation"),
        ((ok, miss, ok), "allocation"),
        ((ok, ok, ok), "none"),
    ):
        s = steps(*args)
        assert attribution(s, slope(s), "ddpm", "heun") == want, (args, want)


def test_split_study_json_fits_the_schema_and_reports():
    study = _synthetic({"ddpm-shipped/heun": {"1000": None, "1000000": None},
                        "ddpm-marginal/heun": {"1000": 128, "1000000": 128}})
    schema.RESULTS.optional["standard_split"].check(to_plain(study.to_json()), "")
    bad = to_plain(study.to_json())
    bad["attribution"]["ddpm"] = 3
    with pytest.raises(ValueError, match="attribution"):
        schema.RESULTS.optional["standard_split"].check(bad, "")
    text = "\n".join(report_lines(study))
    assert "| ddpm-shipped/heun | — | — |" in text and "**start point**" in text and "ddpm/heun" in text
