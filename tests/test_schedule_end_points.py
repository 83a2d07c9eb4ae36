"""Standard schedules' end points ``tau_min = tau(0)``, ``tau_max = tau(1)`` against closed forms.

Each closed form is computed here, independently of :mod:`nsjax.schedules`, in 40-digit mpmath
from the schedule's definition in its paper: the process ``x_s = a_s x1 + sigma_s z`` at its first
and last process times, mapped by signal-to-noise matching ``tau = c a / (sigma + c a)``,
``1 - tau = sigma / (sigma + c a)`` (docs/theory.md §5). DDPM's ``abar_T`` is the product
``prod_{n <= T} (1 - beta_n)`` itself, not the continuation the library uses. Both ``tau`` and
``1 - tau`` are checked (the library computes ``1 - tau`` without cancellation), in float64 and in
float32.
"""

import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

from nsjax import schedules as S

mp.mp.dps = 40


def _tau(c, a, sigma):
    """``(tau, 1 - tau)`` by SNR matching, in mpmath."""
    c, a, sigma = mp.mpf(c), mp.mpf(a), mp.mpf(sigma)
    return c * a / (sigma + c * a), sigma / (sigma + c * a)


def _vp(c, abar):
    return _tau(c, mp.sqrt(abar), mp.sqrt(1 - abar))


def ddpm(c, T=1000, beta_start=1e-4, beta_end=0.02):
    """Ho et al.: ``beta_n`` linear from ``beta_start`` (n = 1) to ``beta_end`` (n = T); the
    sampler starts at ``n = T`` and ends at ``n = 1``."""
    betas = [mp.mpf(beta_start) + (mp.mpf(beta_end) - mp.mpf(beta_start)) * k / (T - 1)
             for k in range(T)]
    abar_T = mp.fprod(1 - b for b in betas)
    return _vp(c, abar_T), _vp(c, 1 - betas[0])


def vpsde(c, beta_min=0.1, beta_max=20.0, eps=1e-3):
    """Song et al.: ``log abar(s) = -beta_min s - (beta_max - beta_min) s^2 / 2``, ``s: 1 -> eps``."""
    def abar(s):
        s = mp.mpf(s)
        return mp.exp(-mp.mpf(beta_min) * s - (mp.mpf(beta_max) - mp.mpf(beta_min)) * s**2 / 2)
    return _vp(c, abar(1)), _vp(c, abar(eps))


def cosine(c, offset=0.008, eps=1e-3):
    """Nichol & Dhariwal: ``abar(s) = f(s) / f(0)``, ``f(s) = cos((s + o)/(1 + o) pi/2)^2``."""
    def abar(s):
        f = lambda u: mp.cos((mp.mpf(u) + offset) / (1 + mp.mpf(offset)) * mp.pi / 2) ** 2  # noqa
        return f(s) / f(0)
    return _vp(c, abar(1)), _vp(c, abar(eps))


def vesde(c, sigma_min=0.01, sigma_max=348.0, eps=1e-5):
    """Song et al.: ``a = 1``, noise ``sqrt(sigma(s)^2 - sigma_min^2)``,
    ``sigma(s) = sigma_min (sigma_max/sigma_min)^s``, ``s: 1 -> eps``."""
    def noise(s):
        sigma = mp.mpf(sigma_min) * (mp.mpf(sigma_max) / mp.mpf(sigma_min)) ** mp.mpf(s)
        return mp.sqrt(sigma**2 - mp.mpf(sigma_min) ** 2)
    return _tau(c, 1, noise(1)), _tau(c, 1, noise(eps))


def edm(c, sigma_min=0.002, sigma_max=80.0):
    """Karras et al.: ``a = 1``, ``sigma`` from ``sigma_max`` (t = 0) to ``sigma_min`` (t = 1)."""
    return _tau(c, 1, sigma_max), _tau(c, 1, sigma_min)


CASES = {
    "ddpm": (S.DDPM(), ddpm(1.0)),
    "ddpm-c3": (S.DDPM(noise_scale=3.0), ddpm(3.0)),
    "ddpm-T50": (S.DDPM(num_train_steps=50, beta_end=0.3), ddpm(1.0, T=50, beta_end=0.3)),
    "vpsde": (S.VPSDE(), vpsde(1.0)),
    "vpsde-c3": (S.VPSDE(noise_scale=3.0, beta_max=10.0), vpsde(3.0, beta_max=10.0)),
    "cosine": (S.Cosine(), cosine(1.0)),
    "cosine-c3": (S.Cosine(noise_scale=3.0, eps=1e-2), cosine(3.0, eps=1e-2)),
    "vesde": (S.VESDE(noise_scale=100.0), vesde(100.0)),
    "vesde-380": (S.VESDE(noise_scale=30.0, sigma_max=380.0), vesde(30.0, sigma_max=380.0)),
    "edm": (S.EDM(noise_scale=100.0), edm(100.0)),
    "edm-rho3": (S.EDM(noise_scale=8.0, rho=3.0), edm(8.0)),
}

KNOWN: dict[str, str] = {}  # cases expected to fail (strict xfail), with the reason

# Relative tolerances. float64: the formulas are a handful of correctly rounded operations whose
# condition numbers are at most |log abar| ~ 10 (DDPM, VP-SDE at s = 1), so 1e-13 is ~500 ulp.
# DDPM continues abar_n to real n by the corrected midpoint rule (error ~ slope^5); DDPM_RTOL
# stays 1e-6 (it caught the uncorrected rule: 1.5e-2 relative in 1 - abar_1 at T = 50). float32: the same
# conditioning with eps = 1.2e-7, and EDM's ``hi + t (lo - hi)`` at t = 1 cancels to
# ``lo = sigma_min^(1/rho)`` with absolute error eps hi, raised to rho: rho eps hi / lo = 1.2e-5
# at rho = 3 (measured 4.6e-6): 2e-5.
RTOL = {np.float64: 1e-13, np.float32: 2e-5}
DDPM_RTOL = 1e-6


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", [
    pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=KNOWN[k])) if k in KNOWN else k
    for k in CASES
])
@pytest.mark.x64
def test_end_points_match_closed_forms(name, dtype):
    schedule, (start, end) = CASES[name]
    assert not schedule.ends_at_data
    rtol = max(RTOL[dtype], DDPM_RTOL if name.startswith("ddpm") else 0.0)
    for t, (tau, tau_c) in ((0.0, start), (1.0, end)):
        got_tau, got_c = schedule(jnp.asarray(t, dtype))
        assert got_tau.dtype == dtype and got_c.dtype == dtype, (got_tau.dtype, got_c.dtype)
        for name, got, want in (("tau", got_tau, tau), ("1 - tau", got_c, tau_c)):
            want = float(want) if abs(want) > 1e-30 else 0.0  # mpmath's cos(pi/2) ~ 1e-43
            if want == 0.0:  # cosine's abar(1) = 0: tau_min = 0 exactly
                assert float(got) == 0.0, (name, t, float(got))
            else:
                np.testing.assert_allclose(float(got), want, rtol=rtol, err_msg=f"{name}({t})")
    # the ends bracket the range: tau_min < tau_max < 1 (the final denoising step closes the gap)
    assert float(start[0]) < float(end[0]) < 1.0
