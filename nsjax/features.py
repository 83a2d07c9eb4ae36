"""Features a sampler must get right, their estimators and errors (MATH.md §6).

Per-particle *statistics* are computed inside the sampler (so whole ensembles never need to be
stored); *features* are ensemble means of them with their standard errors, compared with the
target's exact finite-``d`` references.

- GM: ``p_hat = mean_b 1[r.X_b > 0]``; ``sigma2_hat = mean_b |X_b - sign(r.X_b) r|^2 / d``.
- CW: ``p_hat = mean_b 1[M_b > 0]``; ``m_abs_hat = mean_b |M_b|``;
  spin error ``mean_{b,i} (|X_bi| - 1)^2``.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._types import Array, Float
from .targets.base import AbstractTarget
from .targets.curie_weiss import CurieWeiss
from .targets.gaussian_mixture import GaussianMixture

__all__ = ["statistics", "gm_statistics", "cw_statistics", "estimate", "FEATURES"]

FEATURES = {GaussianMixture: ("p", "sigma2"), CurieWeiss: ("p", "m_abs", "spin_error")}


def gm_statistics(target: GaussianMixture, x: Float[Array, " dim"]) -> dict[str, Array]:
    """``{"overlap": r.x / |r|^2, "sq_dev": |x - sign(r.x) r|^2 / d}`` for one particle.

    ``overlap`` is ``M = r.X/d`` of MATH.md when ``|r|^2 = d``.
    """
    rx = target.r_dot(x)
    sign = jnp.where(rx > 0, 1.0, -1.0)
    sq_dev = jnp.sum((x - target.r_times(sign)) ** 2) / target.dim
    return {"overlap": rx / target.r_norm2, "sq_dev": sq_dev}


def cw_statistics(target: CurieWeiss, x: Float[Array, " dim"]) -> dict[str, Array]:
    """``{"magnetization": mean_i x_i, "spin_error": mean_i (|x_i| - 1)^2}`` for one particle."""
    return {"magnetization": jnp.mean(x), "spin_error": jnp.mean((jnp.abs(x) - 1) ** 2)}


def statistics(target: AbstractTarget, x: Float[Array, " dim"]) -> dict[str, Array]:
    """Per-particle statistics of ``target``'s features."""
    if isinstance(target, GaussianMixture):
        return gm_statistics(target, x)
    if isinstance(target, CurieWeiss):
        return cw_statistics(target, x)
    raise TypeError(f"no feature statistics for target type {type(target).__name__}")


def _mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    n = values.size
    mean = float(values.mean())
    stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return mean, stderr


def estimate(target: AbstractTarget, stats: dict[str, Any]) -> dict[str, float]:
    """Features from per-particle statistics, with exact references, errors and standard errors.

    Returns a flat dict: ``<f>_hat``, ``<f>_ref``, ``<f>_stderr`` and ``<f>_error`` for each
    feature ``f`` (``p_error = |p_hat - p_ref|``; for ``sigma2`` and ``m_abs`` the relative
    error ``|hat / ref - 1|``; ``spin_error`` is itself an error).
    """
    ref = target.reference()
    out: dict[str, float] = {}

    def put(name, values, relative):
        hat, stderr = _mean_and_stderr(np.asarray(values, dtype=np.float64))
        out[f"{name}_hat"], out[f"{name}_ref"], out[f"{name}_stderr"] = hat, ref[name], stderr
        out[f"{name}_error"] = abs(hat / ref[name] - 1) if relative else abs(hat - ref[name])

    if isinstance(target, GaussianMixture):
        put("p", np.asarray(stats["overlap"]) > 0, relative=False)
        put("sigma2", stats["sq_dev"], relative=True)
    elif isinstance(target, CurieWeiss):
        mag = np.asarray(stats["magnetization"])
        put("p", mag > 0, relative=False)
        put("m_abs", np.abs(mag), relative=True)
        put("spin_error", stats["spin_error"], relative=False)
    else:
        raise TypeError(f"no features for target type {type(target).__name__}")
    return out
