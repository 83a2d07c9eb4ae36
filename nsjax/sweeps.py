"""Parameter sweeps as compiled programs: one compilation per shape, vmapped over the grid.

A sweep runs one ensemble per grid point ``(kappa, p, sigma^2, theta, d, ...)`` and per step
count ``N``. Everything that is data (grid values, per-piece step counts) is traced, so

- the grid points are ``vmap``-ped in one program (the particles of each point go through
  ``lax.map`` in chunks, as in :func:`nsjax.solve.sample`);
- the step count ``N`` is a traced argument too: each schedule piece is integrated by diffrax with
  a constant step ``(t_1 - t_0) / n_piece`` (:class:`diffrax.ConstantStepSize`), with the same
  per-piece counts as :func:`nsjax.solve.step_grid`; a new ``N`` reuses the compiled program.

One compilation per ``(build, solver, particle count, dtype)``: a sweep costs little more than
its largest run. The vector field, the end-point handling and the NFE accounting are those of
:func:`nsjax.solve.solve_particle` itself; ``tests/test_sweeps.py`` checks that a sweep point equals
:func:`nsjax.solve.sample` on the same particles.

Sweep-friendly building blocks (their dimension may be traced):

- :class:`TwoPiece`: the four schedules of the paper (constant VP/VE, dilated VP/VE, MATH.md §4) as
  one pytree structure, so they vmap together (:func:`paper_schedule`);
- :class:`QuantileReducedGM`: the exact GM reduction started at given standard-normal quantiles
  (stratified particles: deterministic, error ``O(1/n)`` instead of ``O(n^-1/2)``);
- :class:`ScaledVESDE`: VE-SDE with a traced ``sigma_max``.
"""

from __future__ import annotations

import itertools
import math
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

from ._types import Array, Float
from .interpolants import Linear
from .reduction import ReducedGM, ReducedState
from .schedules import VESDE, AbstractSchedule, ScheduleValue
from .solve import (
    AbstractSystem,
    Particles,
    SolveOptions,
    solve_particle,
    step_grid,
)

__all__ = [
    "TwoPiece",
    "paper_params",
    "paper_schedule",
    "Selected",
    "QuantileReducedGM",
    "ScaledVESDE",
    "normal_quantiles",
    "grid",
    "SweepResult",
    "sweep",
]


# -- sweepable building blocks ---------------------------------------------------------------------
class TwoPiece(AbstractSchedule):
    """Piecewise-linear ``t -> tau`` with a breakpoint at ``t = 1/2`` and traced values there.

    With ``m = tau(1/2)`` and ``m_c = 1 - m`` (both given, so that each keeps full precision)::

        tau = 2 m t,             1 - tau = (1 - 2t) + 2 t m_c     (t <= 1/2)
        1 - tau = m_c (2 - 2t)                                    (t >= 1/2)

    ``m = 1/2``: constant (``tau = t``); ``m = kappa/sqrt(d)``: dilated VP; ``m_c = kappa/sqrt(d)``:
    dilated VE (MATH.md §4). Equal to :class:`nsjax.schedules.DilatedVP` / ``DilatedVE`` up to
    rounding.
    """

    mid: Float[Array, ""] | float
    mid_c: Float[Array, ""] | float

    @property
    def breakpoints(self):
        return (0.5,)

    def evaluate(self, t, piece):
        t = jnp.asarray(t)
        zero = jnp.zeros_like(t)
        if piece == 0:
            return ScheduleValue(
                2 * self.mid * t + zero, (1 - 2 * t) + 2 * t * self.mid_c, 2 * self.mid + zero
            )
        tau_c = self.mid_c * (2 - 2 * t)
        return ScheduleValue(1 - tau_c, tau_c, 2 * self.mid_c + zero)


PAPER = ("vp", "ve", "vp-dilated", "ve-dilated")


def paper_params(name: str, dim: float, kappa: float = 3.0) -> dict[str, float]:
    """Grid values ``{d, c, mid, mid_c}`` of the paper's schedule ``name`` (float64, on the host).

    VP: ``c = 1``; VE: ``c = sqrt(d)`` (MATH.md §1); ``mid``, ``mid_c``: :class:`TwoPiece`.
    """
    if name not in PAPER:
        raise ValueError(f"paper schedule must be one of {PAPER}, got {name!r}")
    root = math.sqrt(dim)
    if not 0 < kappa < root:
        raise ValueError(f"kappa must lie in (0, sqrt(d)) = (0, {root:.4g}), got {kappa}")
    a = kappa / root
    mid, mid_c = {
        "vp": (0.5, 0.5),
        "ve": (0.5, 0.5),
        "vp-dilated": (a, 1 - a),
        "ve-dilated": (1 - a, a),
    }[name]
    return {
        "d": float(dim),
        "c": root if name.startswith("ve") else 1.0,
        "mid": mid,
        "mid_c": mid_c,
    }


def paper_schedule(point: Mapping[str, Any]) -> tuple[Linear, TwoPiece]:
    """``(interpolant, schedule)`` from a grid point holding :func:`paper_params` (traced)."""
    return Linear(noise_scale=point["c"]), TwoPiece(point["mid"], point["mid_c"])


class Selected(AbstractSchedule):
    """One of several schedules with the same pieces, chosen by a traced ``index``.

    Lets schedules of different types share one compiled sweep; every stage evaluates all of
    them (cheap scalars) and keeps the selected one.
    """

    schedules: tuple[AbstractSchedule, ...]
    index: Any

    def __check_init__(self):
        if len({s.breakpoints for s in self.schedules}) != 1:
            raise ValueError("Selected needs schedules with the same breakpoints")
        if len({s.ends_at_data for s in self.schedules}) != 1:
            raise ValueError("Selected needs schedules that all (or none) end at tau = 1")

    @property
    def ends_at_data(self):  # type: ignore[override]
        return self.schedules[0].ends_at_data

    @property
    def breakpoints(self):
        return self.schedules[0].breakpoints

    def evaluate(self, t, piece):
        values = [s.evaluate(t, piece) for s in self.schedules]
        index = jnp.asarray(self.index).astype(jnp.int32)
        return jax.tree.map(lambda *v: jnp.choose(index, v, mode="clip"), *values)


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
        return ReducedState(scale * z, jnp.ones((), dtype), scale**2 * dof)


def normal_quantiles(n: int) -> np.ndarray:
    """``Phi^{-1}((i + 1/2) / n)``, ``i = 0..n-1``: a stratified standard-normal sample."""
    return ndtri((np.arange(n) + 0.5) / n)


class ScaledVESDE(VESDE):
    """VE-SDE whose ``sigma_max`` may be traced (e.g. ``sigma_max`` proportional to ``sqrt(d)``)."""

    def signal_noise(self, t):
        s = self.process_time(t)
        log_ratio = jnp.log(self.sigma_max / self.sigma_min)
        sigma = self.sigma_min * jnp.sqrt(jnp.expm1(2 * s * log_ratio))
        return jnp.ones_like(sigma), sigma


# -- grids -----------------------------------------------------------------------------------------
def grid(**axes: Sequence[float]) -> dict[str, np.ndarray]:
    """Cartesian product of named axes, flattened: ``{name: values of shape (G,)}`` (row-major)."""
    if not axes:
        raise ValueError("grid needs at least one axis")
    names = list(axes)
    points = list(itertools.product(*(list(np.ravel(axes[n])) for n in names)))
    return {n: np.asarray([pt[k] for pt in points], dtype=np.float64) for k, n in enumerate(names)}


# -- the compiled program --------------------------------------------------------------------------
Build = Callable[[dict[str, Array]], tuple[AbstractSystem, Any, AbstractSchedule]]


class _Static(eqx.Module):
    build: Build = eqx.field(static=True)
    solver: Any = eqx.field(static=True)
    adaptive: bool = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    dtype: Any = eqx.field(static=True)
    chunk_size: int = eqx.field(static=True)


def _as_system(system) -> AbstractSystem:
    return system if isinstance(system, AbstractSystem) else Particles(system)


def _solve_one(system, interpolant, schedule, noise, counts, static: _Static):
    """One particle through :func:`nsjax.solve.solve_particle`, step counts traced."""
    options = SolveOptions(
        steps=None,
        solver=static.solver,
        rtol=static.rtol,
        atol=static.atol,
        path_ts=None,
        path_coords=0,
        keep_states=False,
        max_steps=static.max_steps,
        dtype=static.dtype,
    )
    out = solve_particle(
        system, interpolant, schedule, noise, options, None if static.adaptive else counts
    )
    return {name: out[name] for name in ("statistics", "nfe", "finite")}


@eqx.filter_jit
def _program(params, noise, counts, static: _Static):
    def point(point_params):
        system, interpolant, schedule = static.build(point_params)
        system = _as_system(system)
        if isinstance(system, Particles):
            system = Particles(system.target.with_dtype(static.dtype))
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
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype float64 needs jax_enable_x64 (jax.config.update(...))")
    adaptive = steps is None
    if solver is None:
        solver = diffrax.Tsit5() if adaptive else diffrax.Euler()
    if adaptive and not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        raise ValueError(f"steps=None needs an adaptive solver, got {type(solver).__name__}")
    params = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in params.items()}
    sizes = {v.shape[0] for v in params.values()}
    if len(sizes) != 1:
        raise ValueError(
            f"all params need the same length, got { {k: v.shape for k, v in params.items()} }"
        )
    num_particles = jax.tree.leaves(noise)[0].shape[0]
    static = _Static(
        build=build,
        solver=solver,
        adaptive=adaptive,
        rtol=float(rtol),
        atol=float(atol),
        max_steps=int(max_steps),
        dtype=dtype,
        chunk_size=int(min(chunk_size or num_particles, num_particles)),
    )
    traced = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    probe = build({k: v[0] for k, v in traced.items()})[2]
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
