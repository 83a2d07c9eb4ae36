"""Differentiable objectives of a sampler's final law, for optimising schedules (docs/theory.md §8).

**Exact GM errors at any d** (:func:`gm_errors`). Through the exact reduction
(:mod:`nsjax.reduction`) a particle started at ``u(0) = c0 z`` (``z ~ N(0, 1)``) ends at ``u_1(z)``,
one scalar ODE, and every particle shares the same ``g_1`` (``x_perp(1) = g_1 x_perp(0)``). When the
numerical flow ``z -> u_1(z)`` is increasing (checked), the mode weight of the sampler's law is
*exactly*

    p_hat = P(u_1(z) > 0) = Phi(-z*),    u_1(z*) = 0,

a smooth function of the parameters (the p_hat of a finite ensemble is a step function of them):
``z*`` is the initial quantile whose trajectory ends on the separatrix. It is located by
bracketing and refinement, then differentiated by the implicit function theorem,
``dz*/dtheta = -(d u_1/dtheta) / (d u_1/dz)`` at ``z*``, through one Newton correction whose value
changes nothing. Coarse steps can fold the map (particles overshoot the separatrix); then
``p_hat`` is the normal mass of every interval between consecutive crossings ``z*_k`` on which
``u_1 > 0``, each crossing differentiated in the same way. The per-coordinate variance is

    sigma2_hat = (E[(u_1 - sign(u_1) R)^2] + g_1^2 c0^2 (d - 1)) / d,

the first expectation by Gauss–Legendre quadrature in probability on each interval between
crossings. Both are
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

import diffrax
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
    """``z*``: the first initial standard-normal quantile that ends on ``u = 0``."""
    crossings: Array
    """How many times ``u_1(z)`` changes sign on the bracket grid (1: an increasing flow map)."""
    valid: Array
    """Whether every crossing was resolved (between 1 and ``max_crossings``) and all is finite."""


def gm_reference(target: GaussianMixture, dim: Any = None) -> tuple[Any, Any]:
    """``(p_ref, sigma2_ref)`` of :meth:`GaussianMixture.reference`, traceable in ``dim``
    (needs ``|r|^2 = d``)."""
    dim = target.dim if dim is None else dim
    R, s = jnp.sqrt(jnp.asarray(dim, jnp.result_type(float))), jnp.sqrt(target.sigma2)
    lower = ndtr(-R / s)
    phi = jnp.exp(-0.5 * (R / s) ** 2) / jnp.sqrt(2 * jnp.pi)
    return target.p * (1 - lower) + (1 - target.p) * lower, s**2 + 4 * R * (R * lower - s * phi) / dim


def _mixture_pdf(target, R, x):
    s = jnp.sqrt(target.sigma2)
    phi = lambda v: jnp.exp(-0.5 * v**2) / (s * jnp.sqrt(2 * jnp.pi))  # noqa: E731
    return target.p * phi((x - R) / s) + (1 - target.p) * phi((x + R) / s)


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


def refine_brackets(values, brackets, num_refine: int):
    """Sign-change brackets ``(lo, hi, v_lo, v_hi)`` (arrays, one bracket per entry) of the map
    ``values`` (points -> values, both flat arrays) shrunk ``num_refine`` times by 16: each is cut at
    17 points and its first sign-change cell kept. No gradient flows (the callers differentiate
    the root by the implicit function theorem)."""

    def refine(_, brackets):
        lo, hi, _, _ = brackets
        zs = jax.vmap(lambda a, b: jnp.linspace(a, b, 17))(lo, hi)
        vs = jax.lax.stop_gradient(values(zs.reshape(-1)).reshape(zs.shape))
        k = jnp.argmax((vs[:, 1:] > 0) != (vs[:, :-1] > 0), axis=1)
        take = lambda a, j: jnp.take_along_axis(a, j[:, None], axis=1)[:, 0]  # noqa: E731
        return take(zs, k), take(zs, k + 1), take(vs, k), take(vs, k + 1)

    return jax.lax.stop_gradient(jax.lax.fori_loop(0, num_refine, refine, brackets))


def gm_errors(
    target: GaussianMixture,
    interpolant: AbstractInterpolant,
    schedule: AbstractSchedule,
    *,
    steps: StepSpec,
    solver: Any = None,
    dim: Any = None,
    bracket: float = 8.0,
    num_grid: int = 256,
    num_refine: int = 4,
    max_crossings: int = 8,
    dtype: Any = None,
    adjoint: Any = None,
) -> GMErrors:
    """Exact GM feature errors of the sampler ``(interpolant, schedule, solver, steps)``.

    ``dim`` (may be traced) overrides ``target.dim`` as in :class:`~nsjax.reduction.ReducedGM`.
    The separatrix is bracketed on ``num_grid`` points of ``[-bracket, bracket]`` and refined
    ``num_refine`` times by 16 (``z*`` to ``2 bracket / num_grid / 16^num_refine``, 1e-6 at the
    defaults), then Newton steps kept inside that bracket; differentiable in every leaf of
    ``schedule``, ``target`` and ``interpolant``.
    """
    system = ReducedGM(target, dim=dim)
    d = system.dimension
    dtype = dtype or jnp.result_type(float)
    start = schedule.evaluate(jnp.zeros((), dtype), 0)
    c0 = interpolant.noise_scale * interpolant.alpha(start.tau, start.tau_c)

    def finals(z, adjoint=adjoint):
        z = jnp.asarray(z, dtype)
        y0 = ReducedState(c0 * z, 1 + 0 * z, 0 * z)
        def run(y):
            return solve(
                system, interpolant, schedule, y, steps=steps, solver=solver, dtype=dtype, adjoint=adjoint
            ).state

        return jax.vmap(run)(y0)

    # Sign changes of u_1 on a grid of z (no gradient), each refined by 16-fold subdivision.
    grid = jnp.linspace(-bracket, bracket, num_grid, dtype=dtype)
    u = jax.lax.stop_gradient(finals(grid).u)
    positive = u > 0
    changes = positive[1:] != positive[:-1]
    count = jnp.sum(changes)
    (cells,) = jnp.nonzero(changes, size=max_crossings, fill_value=num_grid - 2)
    used = jnp.arange(max_crossings) < count

    start = (grid[cells], grid[cells + 1], u[cells], u[cells + 1])
    lo, hi, u_lo, u_hi = refine_brackets(lambda z: finals(z).u, start, num_refine)
    secant = jnp.where(used, (u_hi - u_lo) / (hi - lo), 1.0)
    z0 = jnp.where(used, lo - u_lo / secant, jnp.inf)

    # One differentiable solve: the crossing particles and Gauss-Legendre nodes in probability on
    # each interval between crossings; each z* by one Newton step (value z0, gradient by the IFT).
    nodes, weights = jnp.asarray(_GL_NODES, dtype), jnp.asarray(_GL_WEIGHTS, dtype)
    ends = (jnp.full((1,), -jnp.inf, dtype), jnp.full((1,), jnp.inf, dtype))

    def node_probs(crossings):
        edges = ndtr(jnp.concatenate([ends[0], crossings, ends[1]]))
        mass = edges[1:] - edges[:-1]
        return (edges[:-1, None] + mass[:, None] * (1 + nodes) / 2).reshape(-1), mass

    # d u_1 / dz by forward mode at the crossings and the nodes (the map is far from linear across
    # the final bracket: a secant slope biases the implicit-function gradient by ~1%), and one
    # Newton step, so that the nodes sit at the crossings to rounding.
    probs0, _ = node_probs(z0)
    points = jnp.concatenate([jnp.where(used, z0, 0.0), ndtri(jnp.clip(probs0, 1e-300, 1 - 1e-16))])
    primal, tangent = jax.jvp(
        lambda z: finals(z, diffrax.ForwardMode()).u, (points,), (jnp.ones_like(points),)
    )
    primal, tangent = jax.lax.stop_gradient(primal), jax.lax.stop_gradient(tangent)
    slope = jnp.where(used, tangent[:max_crossings], 1.0)

    def safeguarded(z_old, step):
        # Newton inside the final bracket only: at large d the map u_1(z) is a smoothed step, its
        # tangent off the crossing means nothing, and an unguarded step can leave the bracket and
        # put quadrature nodes in the wrong mode (sigma2_hat off by ~4 R^2 mass / d).
        z_new = z_old - step
        value = jax.lax.stop_gradient(z_new)
        inside = (value >= lo) & (value <= hi)
        return jnp.where(inside, z_new, z_old + (z_new - value))  # outside: keep the value, IFT slope

    z1 = jnp.where(used, safeguarded(z0, primal[:max_crossings] / slope), jnp.inf)
    probs1, _ = node_probs(z1)
    z_nodes = ndtri(jnp.clip(probs1, 1e-300, 1 - 1e-16))
    state = finals(jnp.concatenate([jnp.where(used, z1, 0.0), z_nodes]))
    z_star = jnp.where(used, safeguarded(z1, state.u[:max_crossings] / slope), jnp.inf)
    probs, mass = node_probs(z_star)
    moved = probs - jax.lax.stop_gradient(probs)  # zero; its gradient moves the nodes with z*
    sign = jnp.where(positive[0], 1.0, -1.0) * (-1.0) ** jnp.arange(max_crossings + 1)
    p_hat = jnp.sum(jnp.where(sign > 0, mass, 0.0))
    g1 = state.g[0]
    masses = (mass[:, None] * weights / 2).reshape(-1)
    signs = jnp.repeat(sign, nodes.shape[0])
    dz_dq = 1 / jnp.exp(-0.5 * z_nodes**2) * jnp.sqrt(2 * jnp.pi)
    u1 = state.u[max_crossings:] + tangent[max_crossings:] * dz_dq * moved
    R = system.r_norm
    along = jnp.sum(masses * (u1 - signs * R) ** 2)
    sigma2_hat = (along + g1**2 * c0**2 * (d - 1)) / d
    # W2 along r: the sampler's law of u_1 against the exact one, coupled by quantiles (exact when
    # the flow map is increasing, one crossing; an upper bound otherwise).
    exact_u = _mixture_quantile(target, R, probs1)
    exact_u = exact_u + moved / jax.lax.stop_gradient(_mixture_pdf(target, R, exact_u))
    w2 = ((g1 * c0 - jnp.sqrt(target.sigma2)) ** 2 * (d - 1) + jnp.sum(masses * (u1 - exact_u) ** 2)) / d
    # count = 0: every trajectory ends in one mode (valid).
    valid = (count <= max_crossings) & jnp.isfinite(p_hat) & jnp.isfinite(sigma2_hat)
    z_star = z_star[0]

    p_ref, sigma2_ref = gm_reference(target, d)
    nan = jnp.asarray(jnp.nan, dtype)
    return GMErrors(
        jnp.where(valid, p_hat, nan),
        jnp.where(valid, sigma2_hat, nan),
        jnp.where(valid, p_hat - p_ref, nan),
        jnp.where(valid, sigma2_hat / sigma2_ref - 1, nan),
        jnp.where(valid, w2, nan),
        z_star,
        count,
        valid,
    )


def tolerance_loss(errors: GMErrors, p_tol: float = 0.01, sigma2_tol: float = 0.02) -> Float[Array, ""]:
    """``(p_error / p_tol)^2 + (sigma2_error / sigma2_tol)^2``: below 1 for each term means pass."""
    return (errors.p_error / p_tol) ** 2 + (errors.sigma2_error / sigma2_tol) ** 2


def smooth_features(order_parameter: Float[Array, " n"], width: float = 0.05) -> Float[Array, ""]:
    """A differentiable surrogate of ``p_hat = mean 1[M > 0]``: ``mean sigmoid(M / width)``."""
    return jnp.mean(jax.nn.sigmoid(order_parameter / width))


def path_distance(final: Any, reference: Any) -> Float[Array, ""]:
    """Mean over particles and coordinates of ``|X_1 - X_1^ref|^2`` (same noise, a fine-step
    reference flow): the pathwise distance objective for full particles."""
    leaves = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.mean((a - b) ** 2), final, reference))
    return sum(leaves) / len(leaves)
