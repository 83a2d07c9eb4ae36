"""The paper's dichotomy at d = 1e4, N = 20 Euler steps, p = 0.8, sigma^2 = 1/4, kappa = 3.

Thresholds, derived (not tuned):
- "misses p" is |p_hat - p| > 0.1 and "misses sigma^2" is sigma2_hat < sigma^2/2 (the issue's
  definitions); "gets" is the complement. With n = 2000 particles the standard error of p_hat is
  sqrt(0.16/n) = 0.009 and that of sigma2_hat below 1e-3, so a 4-standard-error margin separates
  every outcome below from its threshold (the exact reduction, 2e5 particles, measured the 20-step
  Euler biases: constant VP p_hat = 0.999; constant VE sigma2_hat = 0.009 sigma^2; dilated VP
  |p_hat - p| = 0.018, sigma2_hat = 0.75 sigma^2; dilated VE |p_hat - p| = 0.015, sigma2_hat =
  0.61 sigma^2).
- The full engine agrees with the exact reduction of the same scheme within 4 standard errors.
"""

import math

import jax
import pytest

import nsjax
from nsjax import sample
from nsjax.reduction import ReducedGM
from nsjax.registry import preset

D, N, P, SIGMA2, KAPPA, PARTICLES = 10_000, 20, 0.8, 0.25, 3.0, 2000
GM = nsjax.GaussianMixture(dim=D, p=P, sigma2=SIGMA2)


def _features(name, system, particles, seed):
    interp, sched = preset(name, D, kappa=KAPPA)
    result = sample(system, interp, sched, jax.random.PRNGKey(seed), particles, steps=N)
    return nsjax.estimate(GM, result.statistics)


@pytest.mark.parametrize("name", ["vp", "ve", "vp-dilated", "ve-dilated"])
def test_dichotomy(name):
    full = _features(name, GM, PARTICLES, 0)
    exact = _features(name, ReducedGM(GM), 200_000, 1)
    misses_p = abs(full["p_hat"] - P) > 0.1
    misses_sigma2 = full["sigma2_hat"] < SIGMA2 / 2
    expected = {
        "vp": (True, False),
        "ve": (False, True),
        "vp-dilated": (False, False),
        "ve-dilated": (False, False),
    }[name]
    assert (misses_p, misses_sigma2) == expected, full
    # margins: 4 standard errors from each threshold
    assert abs(abs(full["p_hat"] - P) - 0.1) > 4 * math.sqrt(P * (1 - P) / PARTICLES)
    assert abs(full["sigma2_hat"] - SIGMA2 / 2) > 4 * full["sigma2_stderr"]
    # the full engine reproduces the exact law of the same 20-step scheme
    # binomial standard error from the exact law (a sample's own estimate is 0 when p_hat = 1)
    p_ex = exact["p_hat"]
    p_se = math.sqrt(p_ex * (1 - p_ex) * (1 / PARTICLES + 1 / 200_000))
    s_se = math.hypot(full["sigma2_stderr"], exact["sigma2_stderr"])
    assert abs(full["p_hat"] - exact["p_hat"]) < 4 * p_se + 1e-12
    assert abs(full["sigma2_hat"] - exact["sigma2_hat"]) < 4 * s_se + 1e-6
