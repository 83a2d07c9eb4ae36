"""Differentiable Curie–Weiss feature errors on the reduced flow, for optimising schedules.

(docs/theory.md §3: the reduction; §8: optimised schedules.)

A reduced CW particle (:class:`~nsjax.cw_reduction.QuantileReducedCW`) started at ``u`` (the
normalised sum of the noise, ``u ~ N(0, 1)``, and ``q`` at its mean ``d - 1``) ends at the
magnetisation ``M_1(u)``. When the numerical flow ``u -> M_1(u)`` is increasing (one sign change,
checked), the mode weight of the sampler's law of ``u`` is *exactly*

    p_hat = P(M_1(u) > 0) = Phi(-u*),    M_1(u*) = 0,

smooth in the parameters, whereas the mean of ``1[M_1(u_k) > 0]`` over stratified quantiles is a
step function of them. ``u*`` is bracketed on the quantile grid (plus ``±bracket``), refined by
``num_refine`` 16-fold subdivisions, and differentiated by the implicit function theorem,
``du*/dparam = -(dM_1/dparam) / (dM_1/du)`` at ``u*`` (``dM_1/du`` by forward mode), through one
Newton correction whose value is removed (the value stays the bracketed root: at large ``d`` the map
is a steep smoothed step and a Newton step could leave the bracket). ``E|M|`` and the spread
``mean_i (x_i - M)^2`` are the means over ``quantiles`` stratified quantiles of ``u`` (their
integrands are continuous in ``u``), as in :mod:`nsjax.experiments.cw_reduced`.

Errors are against the exact finite-``d`` references (:func:`nsjax.cw_reduction.cw_reference`):
``p_hat - p``, ``spread_hat / spread - 1``, ``E|M|_hat / E|M| - 1``; :func:`cw_tolerance_loss` puts
them in units of the tolerance of ``nsjax reproduce`` (docs/theory.md §6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from ._checks import check_dim, check_positive
from ._types import Array, Float
from .cw_reduction import QuantileReducedCW, cw_reference
from .interpolants import AbstractInterpolant, make_interpolant
from .objectives import refine_brackets
from .optimize import at_dim, check_objective, reduce_losses
from .registry import noise_scale
from .schedules import AbstractSchedule
from .solve import StepSpec, solve
from .sweeps import normal_quantiles
from .targets.curie_weiss import CurieWeiss

__all__ = ["CWErrors", "cw_errors", "cw_tolerance_loss", "cw_objective"]


class CWErrors(NamedTuple):
    """Features of a CW sampler's final law on the reduced flow and their errors."""

    p_hat: Float[Array, ""]
    """``Phi(-u*)``: exact in ``u`` (infinitely many quantiles)."""
    spread_hat: Float[Array, ""]
    m_abs_hat: Float[Array, ""]
    p_error: Float[Array, ""]
    """``p_hat - p_ref`` (absolute)."""
    spread_error: Float[Array, ""]
    """``spread_hat / spread_ref - 1`` (relative)."""
    m_abs_error: Float[Array, ""]
    """``E|M|_hat / E|M|_ref - 1`` (relative)."""
    separatrix: Float[Array, ""]
    """``u*``: the initial quantile of ``u`` whose trajectory ends on ``M = 0``."""
    crossings: Array
    """Sign changes of ``M_1(u)`` on the bracket grid (1: an increasing flow map)."""
    valid: Array
    """One crossing and every value finite (else the features are NaN)."""


def cw_errors(
    target: CurieWeiss,
    interpolant: AbstractInterpolant,
    schedule: AbstractSchedule,
    *,
    steps: StepSpec,
    solver: Any = None,
    dim: Any = None,
    reference: Mapping[str, Any] | None = None,
    quantiles: int = 64,
    nodes: int = 128,
    bracket: float = 8.0,
    num_refine: int = 3,
    dtype: Any = None,
    adjoint: Any = None,
) -> CWErrors:
    """CW feature errors of the sampler ``(interpolant, schedule, solver, steps)`` on the reduced flow.

    Args:
        target: the CW target (``theta``, ``h``; ``dim`` overrides its ``d``, may be traced).
        reference: ``{"p", "spread", "m_abs"}`` (may be traced); default
            :func:`~nsjax.cw_reduction.cw_reference` at the (then concrete) ``d``.
        quantiles: stratified quantiles of ``u`` for ``E|M|`` and the spread (``>= 2``).
        nodes: nodes of the graded rule of :class:`~nsjax.cw_reduction.ReducedCW`.
        bracket: ``u*`` is sought in ``[-bracket, bracket]``; refined to
            ``cell / 16^num_refine`` (``cell``: the bracketing quantile cell).
        adjoint: of the differentiable solves (``diffrax.ForwardMode()`` for ``jax.jacfwd``).

    Differentiable in every array leaf of ``schedule``, ``interpolant`` and ``target``.
    """
    quantiles = check_dim("quantiles", quantiles)
    if quantiles < 2:
        raise ValueError(f"quantiles must be an integer >= 2, got {quantiles}")
    check_positive("bracket", bracket)
    if not isinstance(target, CurieWeiss):
        raise TypeError(f"target must be a CurieWeiss, got {type(target).__name__}")
    system = QuantileReducedCW(target, nodes=nodes, dim=dim)
    if reference is None:
        reference = cw_reference(float(target.theta), float(target.h), float(system.dimension))
    dtype = dtype or jnp.result_type(float)

    def finals(u, adjoint=adjoint):
        def one(v):
            state = solve(
                system, interpolant, schedule, key=v, steps=steps, solver=solver, dtype=dtype, adjoint=adjoint
            ).state
            return system.statistics(state)

        return jax.vmap(one)(jnp.asarray(u, dtype))

    # one solve for the quantiles and the bracket's ends (one traced solve fewer to compile)
    grid = jnp.asarray([-bracket, *normal_quantiles(quantiles), bracket], dtype)
    stats = finals(grid)
    m_grid = jax.lax.stop_gradient(stats["magnetization"])
    m_abs_hat = jnp.mean(jnp.abs(stats["magnetization"][1:-1]))
    spread_hat = jnp.mean(stats["spread"][1:-1])

    # the separatrix: sign changes on the quantile grid and +-bracket, the first one refined
    positive = m_grid > 0
    changes = positive[1:] != positive[:-1]
    count = jnp.sum(changes)
    cell = jnp.argmax(changes)

    start = tuple(a[None] for a in (grid[cell], grid[cell + 1], m_grid[cell], m_grid[cell + 1]))
    lo, hi, m_lo, m_hi = (
        b[0] for b in refine_brackets(lambda u: finals(u)["magnetization"], start, num_refine)
    )
    gap = jnp.where(m_hi != m_lo, m_hi - m_lo, 1.0)
    u0 = jnp.clip(lo - m_lo * (hi - lo) / gap, lo, hi)
    # value u0; derivative -(dM/dparam)/(dM/du) at u0 (forward mode in u)
    m0, slope = jax.jvp(
        lambda u: finals(u[None], diffrax.ForwardMode())["magnetization"][0], (u0,), (jnp.ones_like(u0),)
    )
    slope = jax.lax.stop_gradient(slope)
    slope = jnp.where(jnp.abs(slope) > 0, slope, 1.0)
    u_star = u0 - (m0 - jax.lax.stop_gradient(m0)) / slope
    none = jnp.where(positive[0], -jnp.inf, jnp.inf)  # no crossing: every trajectory in one mode
    u_star = jnp.where(count > 0, u_star, none)
    p_hat = ndtr(-u_star)

    valid = (count == 1) & jnp.isfinite(m_abs_hat) & jnp.isfinite(spread_hat)
    nan = jnp.asarray(jnp.nan, dtype)
    p_ref, s_ref, m_ref = (jnp.asarray(reference[k], dtype) for k in ("p", "spread", "m_abs"))
    ok = lambda x: jnp.where(valid, x, nan)  # noqa: E731
    return CWErrors(
        ok(p_hat),
        ok(spread_hat),
        ok(m_abs_hat),
        ok(p_hat - p_ref),
        ok(spread_hat / s_ref - 1),
        ok(m_abs_hat / m_ref - 1),
        u_star,
        count,
        valid,
    )


def cw_tolerance_loss(errors: CWErrors, p_tol: float = 0.01, s_tol: float = 0.02) -> Float[Array, ""]:
    """``(p_error/p_tol)^2 + (spread_error/s_tol)^2 + (m_abs_error/s_tol)^2``: each term < 1 means pass."""
    return (
        (errors.p_error / p_tol) ** 2 + (errors.spread_error / s_tol) ** 2 + (errors.m_abs_error / s_tol) ** 2
    )


def cw_objective(
    target: CurieWeiss,
    dims: Sequence[float],
    *,
    solver: Any,
    steps: StepSpec,
    quantiles: int = 64,
    nodes: int = 128,
    num_refine: int = 3,
    reduce: str = "sum",
    p_tol: float = 0.01,
    s_tol: float = 0.02,
) -> Callable[[Any], jax.Array]:
    """``schedule -> loss``: :func:`cw_tolerance_loss` of :func:`cw_errors` at each ``d`` of ``dims``
    (a :class:`~nsjax.schedules.TwoPhase` re-dimensioned by :func:`nsjax.optimize.at_dim`, the
    interpolant's noise scale of its noise at ``d``), summed (``"sum"``) or soft-maxed (``"max"``),
    differentiable in forward mode (``diffrax.ForwardMode``) for :func:`nsjax.optimize.optimize`."""
    dims = check_objective(dims, reduce, p_tol=p_tol, s_tol=s_tol)
    refs = [cw_reference(float(target.theta), float(target.h), d) for d in dims]
    dtype = jnp.result_type(float)
    table = {k: jnp.asarray([r[k] for r in refs], dtype) for k in ("p", "spread", "m_abs")}
    grid = jnp.asarray(dims, dtype)
    adjoint = diffrax.ForwardMode()

    def at(schedule, d, ref):
        interpolant = make_interpolant("linear", noise_scale(schedule.noise, d))
        errors = cw_errors(
            target,
            interpolant,
            at_dim(schedule, d),
            steps=steps,
            solver=solver,
            dim=d,
            reference=ref,
            quantiles=quantiles,
            nodes=nodes,
            num_refine=num_refine,
            adjoint=adjoint,
        )
        return cw_tolerance_loss(errors, p_tol, s_tol)

    def loss(schedule) -> jax.Array:
        terms = jax.vmap(lambda d, ref: at(schedule, d, ref))(grid, table)
        return reduce_losses(terms, reduce)

    return loss
