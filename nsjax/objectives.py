"""Differentiable objectives of a sampler's final law, for optimising schedules (docs/theory.md §8).

**Exact GM errors at any d** (:func:`gm_errors`). Through the exact reduction
(:mod:`nsjax.reduction`) a particle started at ``u(0) = c0 z`` (``z ~ N(0, 1)``) ends at ``u_1(z)``,
one scalar ODE, and every particle shares the same ``g_1`` (``x_perp(1) = g_1 x_perp(0)``). When the
numerical flow ``z -> u_1(z)`` is increasing (checked), the mode weight of the sampler's law is
*exactly*

    p_hat = P(u_1(z) > 0) = Phi(-z*),    u_1(z*) = 0,

a step function of nothing: ``z*`` is the initial quantile whose trajectory ends on the separatrix.
It is located by bracketing and refinement, then differentiated by the implicit function theorem,
``dz*/dtheta = -(d u_1/dtheta) / (d u_1/dz)`` at ``z*``, through one Newton correction whose value
changes nothing. The per-coordinate variance is

    sigma2_hat = (E[(u_1 - sign(u_1) R)^2] + g_1^2 c0^2 (d - 1)) / d,

the first expectation by Gauss–Legendre quadrature in probability on each side of ``z*``. Both are
the infinite-ensemble limits of :meth:`nsjax.reduction.ReducedGM.statistics` averaged by
:func:`nsjax.estimate`; their errors against the exact finite-``d`` references are the features'
errors with no sampling error. :func:`gm_errors` also gives the per-coordinate squared 2-Wasserstein
distance between the sampler's final law and the exact one, ``((g_1 c0 - s)^2 (d - 1) + W_2^2(u_1,
u_exact)) / d``.

**Full particles** (:func:`smooth_features`, :func:`path_distance`): a sigmoid surrogate of the mode
indicator and the mean squared distance to a fine-step reference flow from the same noise, for
targets without a reduction (Curie–Weiss, the K-mode mixture).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from ._types import Array, Float
from .interpolants import AbstractInterpolant
from .reduction import ReducedGM, ReducedState
from .schedules import AbstractSchedule
from .solve import StepSpec, solve
from .targets.gaussian_mixture import GaussianMixture

__all__ = ["GMErrors", "gm_reference", "gm_errors", "tolerance_loss", "smooth_features", "path_distance"]

_GL_NODES, _GL_WEIGHTS = (np.asarray(a) for a in np.polynomial.legendre.leggauss(24))


class GMErrors(NamedTuple):
    """Exact features of a GM sampler's final law and their errors (infinite ensemble)."""

    p_hat: Float[Array, ""]
    sigma2_hat: Float[Array, ""]
    p_error: Float[Array, ""]
    """``p_hat - p_ref`` (absolute, as :meth:`GaussianMixture.features`)."""
    sigma2_error: Float[Array, ""]
    """``sigma2_hat / sigma2_ref - 1`` (relative)."""
    w2: Float[Array, ""]
    """Per-coordinate squared 2-Wasserstein distance to the exact law."""
    separatrix: Float[Array, ""]
    """``z*``: the initial standard-normal quantile that ends on ``u = 0``."""
    valid: Array
    """Whether ``z -> u_1(z)`` was increasing on the bracket grid and crossed zero once."""


def gm_reference(target: GaussianMixture, dim: Any = None) -> tuple[Any, Any]:
    """``(p_ref, sigma2_ref)`` of :meth:`GaussianMixture.reference`, traceable in ``dim``
    (needs ``|r|^2 = d``)."""
    dim = target.dim if dim is None else dim
    R, s = jnp.sqrt(jnp.asarray(dim, jnp.result_type(float))), jnp.sqrt(target.sigma2)
    lower = ndtr(-R / s)
    phi = jnp.exp(-0.5 * (R / s) ** 2) / jnp.sqrt(2 * jnp.pi)
    return target.p * (1 - lower) + (1 - target.p) * lower, s**2 + 4 * R * (R * lower - s * phi) / dim


def _mixture_quantile(target, R, probs, iters=80):
    """Quantiles of ``p N(R, s^2) + (1 - p) N(-R, s^2)`` by bisection (no gradient needed)."""
    s = jnp.sqrt(target.sigma2)

    def cdf(x):
        return target.p * ndtr((x - R) / s) + (1 - target.p) * ndtr((x + R) / s)

    lo = jnp.full_like(probs, -1.0) * (R + 10 * s)
    hi = -lo

    def body(_, bracket):
        lo, hi = bracket
        mid = (lo + hi) / 2
        below = cdf(mid) < probs
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iters, body, (lo, hi))
    return jax.lax.stop_gradient((lo + hi) / 2)


def gm_errors(
    target: GaussianMixture,
    interpolant: AbstractInterpolant,
    schedule: AbstractSchedule,
    *,
    steps: StepSpec,
    solver: Any = None,
    dim: Any = None,
    bracket: float = 8.0,
    num_grid: int = 64,
    num_refine: int = 3,
    dtype: Any = None,
    adjoint: Any = None,
) -> GMErrors:
    """Exact GM feature errors of the sampler ``(interpolant, schedule, solver, steps)``.

    ``dim`` (may be traced) overrides ``target.dim`` as in :class:`~nsjax.reduction.ReducedGM`.
    The separatrix is bracketed on ``num_grid`` points of ``[-bracket, bracket]`` and refined
    ``num_refine`` times by 16 (``z*`` to ``2 bracket / num_grid / 16^num_refine``, then one Newton
    step); differentiable in every leaf of ``schedule``, ``target`` and ``interpolant``.
    """
    system = ReducedGM(target, dim=dim)
    d = system.dimension
    dtype = dtype or jnp.result_type(float)
    start = schedule.evaluate(jnp.zeros((), dtype), 0)
    c0 = interpolant.noise_scale * interpolant.alpha(start.tau, start.tau_c)

    def finals(z):
        z = jnp.asarray(z, dtype)
        y0 = ReducedState(c0 * z, 1 + 0 * z, 0 * z)
        run = lambda y: solve(system, interpolant, schedule, y, steps=steps, solver=solver, dtype=dtype,
                              adjoint=adjoint).state
        return jax.vmap(run)(y0)

    grid = jnp.linspace(-bracket, bracket, num_grid, dtype=dtype)
    u = jax.lax.stop_gradient(finals(grid).u)
    valid = jnp.all(jnp.diff(u) > 0) & (u[0] < 0) & (u[-1] > 0)
    index = jnp.clip(jnp.sum(u <= 0) - 1, 0, num_grid - 2)

    def refine(_, bracket):
        lo, hi, _, _ = bracket
        zs = jnp.linspace(lo, hi, 17)
        us = jax.lax.stop_gradient(finals(zs).u)
        k = jnp.clip(jnp.sum(us <= 0) - 1, 0, 15)
        return zs[k], zs[k + 1], us[k], us[k + 1]

    start = (grid[index], grid[index + 1], u[index], u[index + 1])
    lo, hi, u_lo, u_hi = jax.lax.stop_gradient(jax.lax.fori_loop(0, num_refine, refine, start))
    slope = (u_hi - u_lo) / (hi - lo)
    z0 = lo - u_lo / slope

    # One differentiable solve: the separatrix particle and Gauss-Legendre nodes in probability on
    # each side of z* (for E[(u_1 - sign R)^2]); z* by one Newton step (value z0, gradient by the IFT).
    nodes, weights = jnp.asarray(_GL_NODES, dtype), jnp.asarray(_GL_WEIGHTS, dtype)
    q0 = ndtr(z0)
    probs = jnp.concatenate([q0 * (1 + nodes) / 2, q0 + (1 - q0) * (1 + nodes) / 2])
    state = finals(jnp.concatenate([z0[None], ndtri(probs)]))
    z_star = z0 - state.u[0] / slope
    p_hat = ndtr(-z_star)
    g1 = state.g[0]
    q_star = ndtr(z_star)
    masses = jnp.concatenate([q_star * weights / 2, (1 - q_star) * weights / 2])
    signs = jnp.concatenate([-jnp.ones_like(nodes), jnp.ones_like(nodes)])
    u1 = state.u[1:]
    R = system.r_norm
    along = jnp.sum(masses * (u1 - signs * R) ** 2)
    sigma2_hat = (along + g1**2 * c0**2 * (d - 1)) / d
    exact_u = _mixture_quantile(target, R, probs)
    w2 = ((g1 * c0 - jnp.sqrt(target.sigma2)) ** 2 * (d - 1) + jnp.sum(masses * (u1 - exact_u) ** 2)) / d

    p_ref, sigma2_ref = gm_reference(target, d)
    nan = jnp.asarray(jnp.nan, dtype)
    return GMErrors(
        jnp.where(valid, p_hat, nan),
        jnp.where(valid, sigma2_hat, nan),
        jnp.where(valid, p_hat - p_ref, nan),
        jnp.where(valid, sigma2_hat / sigma2_ref - 1, nan),
        jnp.where(valid, w2, nan),
        z_star,
        valid,
    )


def tolerance_loss(errors: GMErrors, p_tol: float = 0.01, sigma2_tol: float = 0.02) -> Float[Array, ""]:
    """``(p_error / p_tol)^2 + (sigma2_error / sigma2_tol)^2``: below 1 for each term means pass."""
    return (errors.p_error / p_tol) ** 2 + (errors.sigma2_error / sigma2_tol) ** 2


def smooth_features(
    order_parameter: Float[Array, " n"], width: float = 0.05
) -> Float[Array, ""]:
    """A differentiable surrogate of ``p_hat = mean 1[M > 0]``: ``mean sigmoid(M / width)``."""
    return jnp.mean(jax.nn.sigmoid(order_parameter / width))


def path_distance(final: Any, reference: Any) -> Float[Array, ""]:
    """Mean over particles and coordinates of ``|X_1 - X_1^ref|^2`` (same noise, a fine-step
    reference flow): the pathwise distance objective for full particles."""
    leaves = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.mean((a - b) ** 2), final, reference))
    return sum(leaves) / len(leaves)
