"""The generic estimator: features owned by the targets, non-finite particles excluded."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsjax
from nsjax.targets import CurieWeiss, GaussianMixture


def test_estimate_excludes_nonfinite_particles():
    """A NaN overlap is not a particle of the minus mode; a particle with any non-finite
    statistic is dropped from every feature."""
    gm = GaussianMixture(dim=4, p=0.8, sigma2=0.25)
    stats = {
        "overlap": np.array([0.5, -0.2, np.nan, 0.3, 0.1]),
        "sq_dev": np.array([0.2, 0.3, 0.25, 0.1, np.inf]),
    }
    f = nsjax.estimate(gm, stats)
    assert f["p_hat"] == pytest.approx(2 / 3, rel=1e-15)  # NaN > 0 is False: 3/5 if counted
    assert f["sigma2_hat"] == pytest.approx(0.2, rel=1e-15)
    assert f["nonfinite"] == 2 and f["particles"] == 3
    assert f["p_stderr"] == pytest.approx(np.std([1, 0, 1], ddof=1) / math.sqrt(3), rel=1e-15)


def test_estimate_needs_one_finite_particle():
    gm = GaussianMixture(dim=4)
    with pytest.raises(ValueError, match="non-finite"):
        nsjax.estimate(gm, {"overlap": np.array([np.nan, 1.0]), "sq_dev": np.array([0.1, np.nan])})


def test_estimate_formulas_for_the_two_targets():
    """GM: p from 1[overlap > 0] (absolute), sigma2 from sq_dev (relative); CW: p from 1[M > 0],
    m_abs from |M| (relative), spin_error itself (reference 0, error = estimate)."""
    rng = np.random.default_rng(0)
    overlap, sq_dev = rng.normal(size=50), rng.uniform(0.1, 0.4, size=50)
    gm = GaussianMixture(dim=4, p=0.7, sigma2=0.3)
    f = nsjax.estimate(gm, {"overlap": overlap, "sq_dev": sq_dev})
    ref = gm.reference()
    assert f["p_hat"] == np.mean(overlap > 0) and f["p_ref"] == ref["p"]
    assert f["p_error"] == abs(f["p_hat"] - ref["p"])
    assert f["sigma2_hat"] == pytest.approx(sq_dev.mean(), rel=1e-15)
    assert f["sigma2_error"] == abs(f["sigma2_hat"] / ref["sigma2"] - 1)
    assert f["sigma2_stderr"] == pytest.approx(sq_dev.std(ddof=1) / math.sqrt(50), rel=1e-12)

    cw = CurieWeiss(dim=6, theta=2.0, h=0.3)
    mag, spin = rng.uniform(-1, 1, size=50), rng.uniform(0, 0.2, size=50)
    spread = rng.uniform(0, 0.1, size=50)
    f = nsjax.estimate(cw, {"magnetization": mag, "spread": spread, "spin_error": spin})
    ref = cw.reference()
    assert f["p_hat"] == np.mean(mag > 0) and f["p_error"] == abs(f["p_hat"] - ref["p"])
    assert f["m_abs_hat"] == pytest.approx(np.abs(mag).mean(), rel=1e-15)
    assert f["m_abs_error"] == abs(f["m_abs_hat"] / ref["m_abs"] - 1)
    assert f["spin_error_ref"] == 0.0 and f["spin_error_error"] == f["spin_error_hat"]
    assert f["spin_error_hat"] == pytest.approx(spin.mean(), rel=1e-15)


def test_targets_own_statistics_and_order_parameters():
    x = jnp.array([0.5, -1.5, 2.0, 0.25])
    gm = GaussianMixture(dim=4, p=0.7, sigma2=0.3)
    s = gm.statistics(x)
    assert set(s) == {"overlap", "sq_dev"}
    assert float(s["overlap"]) == pytest.approx(1.25 / 4)
    assert float(gm.order_parameter(x)) == float(s["overlap"])
    assert float(s["sq_dev"]) == pytest.approx(float(jnp.sum((x - 1.0) ** 2)) / 4)
    cw = CurieWeiss(dim=4)
    s = cw.statistics(x)
    assert set(s) == {"magnetization", "spread", "spin_error"}
    assert float(s["spread"]) == pytest.approx(float(jnp.mean((x - 1.25 / 4) ** 2)))
    assert float(cw.order_parameter(x)) == float(s["magnetization"]) == pytest.approx(1.25 / 4)
    stats = jax.vmap(gm.statistics)(jnp.stack([x, -x]))
    assert stats["overlap"].shape == (2,)
