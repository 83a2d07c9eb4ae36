"""Parameter sweeps as compiled programs: one compilation per shape, vmapped over the grid.

A sweep runs one ensemble per grid point ``(kappa, p, sigma^2, theta, d, ...)`` and per step
count ``N``. Everything that is data (grid values, per-piece step counts) is traced, so

- the grid points are ``vmap``-ped in one program (the particles of each point go through
  ``lax.map`` in chunks, as in :func:`nsjax.sample`);
- the step count ``N`` is a traced argument too (:class:`nsjax.solve.PieceSteps`: each schedule
  piece is integrated with a constant step ``(t_1 - t_0) / n_piece``, with the same per-piece
  counts as :func:`nsjax.solve.step_grid`); a new ``N`` reuses the compiled program.

One compilation per ``(build, solver, particle count, dtype)``: a sweep costs little more than
its largest run. Each particle goes through :func:`nsjax.solve` itself, validated by the same
:func:`nsjax.solve.check_solve` as :func:`nsjax.sample`; ``tests/test_sweeps.py`` checks that a
sweep point equals :func:`nsjax.sample` on the same particles.

Every schedule is traceable in its numeric parameters (``d``, ``kappa``, ``sigma_max``), so a
build needs no special classes: ``DilatedVP(point["kappa"], point["d"])``; schedules of different
types share one program through :class:`nsjax.schedules.Selected` (the constant schedule with
``Constant(breaks=(0.5,))`` when it joins the two-phase dilations). Sweep-specific:
:class:`QuantileReducedGM`, the exact GM reduction started at given standard-normal quantiles
(stratified particles: deterministic, error ``O(1/n)`` instead of ``O(n^-1/2)``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtri

from ._checks import check_dim, check_dtype, check_positive
from ._types import Array
from .reduction import ReducedGM, ReducedState
from .schedules import AbstractSchedule
from .solve import PieceSteps, check_solve, solve, step_grid
from .systems import AbstractSystem, as_system

__all__ = [
    "QuantileReducedGM",
    "normal_quantiles",
    "grid",
    "SweepResult",
    "sweep",
]


class QuantileReducedGM(ReducedGM):
    """:class:`~nsjax.reduction.ReducedGM` whose particles start at given normal quantiles.

    ``init(z, scale)`` takes ``u(0) = scale z`` (``z`` a float, e.g. :func:`normal_quantiles`)
    and ``q = |x_perp(0)|^2`` at its mean ``scale^2 (d - 1)``. Since ``g`` is the same for every
    particle and ``sigma2_hat`` is linear in ``q``, replacing ``q`` by its mean changes no
    feature's expectation (Rao–Blackwell); stratified ``z`` makes ``p_hat`` and ``sigma2_hat``
    quadratures over ``u(0)`` with error ``O(1/n)``.
    """

    def init(self, key, scale, dtype):
        z = jnp.asarray(key, dtype)
        dof = jnp.maximum(jnp.asarray(self.dimension, dtype) - 1, 0)
        u = scale * z
        return ReducedState(u, 1 + 0 * u, scale**2 * dof)  # g batched like u: ReducedGM.init


def normal_quantiles(n: int) -> np.ndarray:
    """``Phi^{-1}((i + 1/2) / n)``, ``i = 0..n-1``: a stratified standard-normal sample."""
    return ndtri((np.arange(n) + 0.5) / n)


# -- grids -----------------------------------------------------------------------------------------
def grid(**axes: Sequence[float]) -> dict[str, np.ndarray]:
    """Cartesian product of named axes, flattened: ``{name: values of shape (G,)}`` (row-major)."""
    if not axes:
        raise ValueError("grid needs at least one axis")
    names = list(axes)
    points = list(itertools.product(*(list(np.ravel(axes[n])) for n in names)))
    return {n: np.asarray([pt[k] for pt in points], dtype=np.float64) for k, n in enumerate(names)}


def _check_params(params: Any) -> dict[str, np.ndarray]:
    """``{name: finite values of shape (G,)}``, ``G >= 1`` the same for every name."""
    if not isinstance(params, Mapping) or not params:
        raise ValueError(
            f"params must be a non-empty dict {{name: values of shape (G,)}} (see grid), got {params!r}"
        )
    out = {}
    for k, v in params.items():
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"params[{k!r}] must be numbers of shape (G,), got {v!r}") from None
        if arr.ndim > 1:
            raise ValueError(
                f"params[{k!r}] must have shape (G,) (one value per grid point), got shape {arr.shape}"
            )
        arr = arr.ravel()
        if arr.size < 1:
            raise ValueError(f"params[{k!r}] must have shape (G,) with G >= 1 grid points, got none")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"params[{k!r}] must be finite, in (-inf, inf), got {arr.tolist()}")
        out[k] = arr
    sizes = {k: v.shape for k, v in out.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"params must all have the same length G, shape (G,), got {sizes}")
    return out


def _check_steps(steps: Any) -> list[int]:
    """A non-empty list of integer step counts ``N >= 1``."""
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence | np.ndarray) or len(steps) == 0:
        raise TypeError(
            f"steps must be a non-empty list of integers >= 1 (or None: adaptive), got {steps!r}"
        )
    return [check_dim(f"steps[{i}]", n) for i, n in enumerate(steps)]


# -- the compiled program --------------------------------------------------------------------------
Build = Callable[[dict[str, Array]], tuple[AbstractSystem, Any, AbstractSchedule]]


class _Static(eqx.Module):
    build: Build = eqx.field(static=True)
    solver: Any = eqx.field(static=True)
    adaptive: Any = eqx.field(static=True)
    """``None`` for fixed steps, else the ``diffrax.PIDController``."""
    max_steps: int = eqx.field(static=True)
    dtype: Any = eqx.field(static=True)
    chunk_size: int = eqx.field(static=True)


def _solve_one(system, interpolant, schedule, noise, counts, static: _Static):
    """One particle through :func:`nsjax.solve`, step counts traced."""
    steps = static.adaptive if static.adaptive is not None else PieceSteps(counts)
    sol = solve(
        system, interpolant, schedule, key=noise, steps=steps, solver=static.solver,
        max_steps=static.max_steps, dtype=static.dtype,
    )
    return {"statistics": system.statistics(sol.state), "nfe": sol.nfe, "finite": sol.finite}


@eqx.filter_jit
def _program(params, noise, counts, static: _Static):
    def point(point_params):
        system, interpolant, schedule = static.build(point_params)
        system = as_system(system).with_dtype(static.dtype)
        return jax.lax.map(
            lambda n: _solve_one(system, interpolant, schedule, n, counts, static),
            noise,
            batch_size=static.chunk_size,
        )

    return jax.vmap(point)(params)


# -- results ---------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """What :func:`sweep` returns (host numpy arrays).

    Arrays are indexed ``[step_index, grid_point, particle]``; ``step_index`` runs over ``steps``
    (one entry, ``None``, for adaptive sweeps).
    """

    params: dict[str, np.ndarray]
    steps: list[int | None]
    statistics: dict[str, np.ndarray]
    nfe: np.ndarray
    nonfinite: np.ndarray
    """Non-finite particles per ``[step_index, grid_point]``."""
    run_seconds: list[float] = field(default_factory=list)
    """Wall time of each step count's call (the first includes the compilation)."""

    def point(self, step_index: int, grid_index: int) -> dict[str, np.ndarray]:
        """Per-particle statistics of one run."""
        return {k: v[step_index, grid_index] for k, v in self.statistics.items()}


def sweep(
    build: Build,
    params: Mapping[str, Any],
    noise: Any,
    *,
    steps: Sequence[int] | None,
    solver=None,
    rtol: float = 1e-3,
    atol: float = 1e-6,
    dtype=jnp.float64,
    max_steps: int = 100_000,
    chunk_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[int, SweepResult], bool] | None = None,
) -> SweepResult:
    """Run ``build(point)`` for every grid point and every step count in one compiled program.

    Args:
        build: ``point -> (system or target, interpolant, schedule)``, with ``point`` a dict of
            traced scalars (one grid point). Keep the same function object between calls: it is
            a static argument, so a new one compiles again.
        params: ``{name: values of shape (G,)}`` (e.g. from :func:`grid`).
        noise: per-particle inputs of ``system.init``, leading axis = particles: PRNG keys
            (``jax.random.split(key, P)``) for targets, floats (:func:`normal_quantiles`) for
            :class:`QuantileReducedGM`. Every grid point uses the same particles.
        steps: fixed step counts ``N`` (one traced program for all), or ``None`` for adaptive
            steps (``solver`` must be adaptive; PID at ``rtol``, ``atol``).
        solver: diffrax solver (default ``Euler()``, ``Tsit5()`` when adaptive).
        dtype: ``float64`` (default; needs ``jax_enable_x64``) or ``float32``.
        chunk_size: particles per vmapped chunk within a grid point (default: all).
        progress: called with 1 after each step count (e.g. ``tqdm.update``).
        stop: ``stop(i, partial_result)`` after step count ``i``; ``True`` ends the sweep early
            (later step counts are then absent from the result).

    Returns:
        :class:`SweepResult`.
    """
    dtype = check_dtype(dtype)
    if not callable(build):
        raise TypeError(
            "build must be a function point -> (system or target, interpolant, schedule), "
            f"got {build!r}"
        )
    adaptive = steps is None
    params = _check_params(params)
    if adaptive:
        check_positive("rtol", rtol)
        check_positive("atol", atol)
    else:
        steps = _check_steps(steps)
    max_steps = check_dim("max_steps", max_steps)
    leaves = jax.tree.leaves(noise)
    if not leaves or any(jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] < 1 for leaf in leaves):
        raise ValueError(
            "noise must hold per-particle inputs with a leading particle axis of size >= 1 "
            f"(e.g. jax.random.split(key, P)), got {noise!r}"
        )
    num_particles = jnp.shape(leaves[0])[0]
    if chunk_size is not None:
        chunk_size = check_dim("chunk_size", chunk_size)
    traced = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    _, probe_interpolant, probe = build({k: v[0] for k, v in traced.items()})
    controller = diffrax.PIDController(rtol=float(rtol), atol=float(atol)) if adaptive else None
    for n in [controller] if adaptive else [int(n) for n in steps]:
        solver_used, _ = check_solve(probe_interpolant, probe, solver, n)  # as sample() does
    static = _Static(
        build=build,
        solver=solver_used,
        adaptive=controller,
        max_steps=max_steps,
        dtype=dtype,
        chunk_size=int(min(chunk_size or num_particles, num_particles)),
    )
    step_list: list[int | None] = [None] if adaptive else [int(n) for n in steps]
    result = SweepResult(
        params=params, steps=[], statistics={}, nfe=np.zeros((0,)), nonfinite=np.zeros((0,))
    )
    stats_parts, nfe_parts, bad_parts = [], [], []
    for i, n in enumerate(step_list):
        if n is None:
            counts = np.ones(len(probe.intervals()), np.int32)
        else:
            counts = np.asarray([len(g) - 1 for g in step_grid(probe, n)], np.int32)
        start = time.perf_counter()
        out = _program(traced, noise, jnp.asarray(counts), static)
        out = jax.tree.map(np.asarray, jax.block_until_ready(out))
        result.run_seconds.append(time.perf_counter() - start)
        stats_parts.append(out["statistics"])
        nfe_parts.append(out["nfe"])
        bad_parts.append((~out["finite"]).sum(axis=-1))
        result.steps.append(n)
        result.statistics = {k: np.stack([s[k] for s in stats_parts]) for k in stats_parts[0]}
        result.nfe = np.stack(nfe_parts)
        result.nonfinite = np.stack(bad_parts)
        if progress is not None:
            progress(1)
        if stop is not None and stop(i, result):
            break
    return result
