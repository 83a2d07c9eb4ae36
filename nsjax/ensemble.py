"""The sampling driver: an ensemble of particles through :func:`nsjax.solve`, host results out.

:func:`sample` validates its arguments once (:func:`nsjax.solve.check_solve`), splits the key
into one key per particle (particle ``b`` uses ``jax.random.split(key, n)[b]``, so results do not
depend on chunking or devices), runs particles in chunks of ``chunk_size`` through
``jax.lax.map`` (chosen from ``memory_budget`` when not given) on one device or across devices
(:mod:`nsjax.sharding`), keeps per-particle statistics (and optional path summaries; whole states
only on request) and reports non-finite particles, never averaging them silently.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_dim, check_dtype, check_positive
from ._types import PRNGKeyArray
from .compilation import jit
from .diagnostics import memory_report
from .interpolants import AbstractInterpolant
from .schedules import AbstractSchedule
from .solve import Save, check_solve, save_times, solve
from .solvers import evaluations_per_step
from .start import with_start
from .systems import AbstractSystem
from .targets.base import AbstractTarget

__all__ = ["SampleResult", "sample", "check_dtype"]


@dataclass
class SampleResult:
    """What :func:`sample` returns (arrays are host numpy arrays)."""

    statistics: dict[str, np.ndarray]
    """Per-particle feature statistics, each of shape ``(particles,)``."""
    nfe: np.ndarray
    """Velocity evaluations per particle (adaptive solves differ between particles)."""
    num_steps: np.ndarray
    """Solver steps per particle (rejected adaptive steps included)."""
    path_ts: np.ndarray | None = None
    path: dict[str, np.ndarray] | None = None
    """Summaries at ``path_ts``: ``overlap`` ``(particles, T)``, ``coords`` ``(particles, T, k)``."""
    states: np.ndarray | None = None
    wall_seconds: float = 0.0
    chunk_size: int = 0
    nonfinite: int = 0
    """Particles that ended with NaN/inf (``max_steps`` exhaustion included)."""
    max_steps_reached: int = 0
    """Particles whose adaptive solve ran out of ``max_steps`` (counted in ``nonfinite`` too)."""
    info: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    """Memory report (:func:`nsjax.diagnostics.memory_report`): ``estimated_bytes_per_device``
    (chunk working set from ``bytes_per_particle``), ``peak_rss_bytes`` (process high-water mark
    so far) and ``device_peak_bytes`` (``memory_stats()['peak_bytes_in_use']`` where the backend
    has it)."""


class _Config(eqx.Module):
    """Static options of every particle's solve in one :func:`sample` call."""

    steps: Any = eqx.field(static=True)
    solver: Any = eqx.field(static=True)
    save: Save | None = eqx.field(static=True)
    keep_states: bool = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    dtype: Any = eqx.field(static=True)


def _particle(system, interpolant, schedule, key, config: _Config) -> dict[str, Any]:
    """One particle's solve, reduced to what the host keeps."""
    sol = solve(
        system, interpolant, schedule, key=key, steps=config.steps, solver=config.solver,
        save=config.save, max_steps=config.max_steps, dtype=config.dtype,
    )
    out = {
        "statistics": system.statistics(sol.state),
        "nfe": sol.nfe,
        "num_steps": sol.num_steps,
        "finite": sol.finite,
        "successful": sol.successful,
    }
    if sol.path is not None:
        out["path"] = sol.path
    if config.keep_states:
        out["state"] = sol.state
    return out


@jit
def _run(system, interpolant, schedule, keys, config: _Config, chunk_size: int):
    return jax.lax.map(
        lambda key: _particle(system, interpolant, schedule, key, config), keys, batch_size=chunk_size
    )


@jit
def _run_particle_sharded(system, interpolant, schedule, keys, config: _Config, chunk_size, mesh):
    from .sharding import run_particle_sharded

    def block(local_keys):
        return jax.lax.map(
            lambda key: _particle(system, interpolant, schedule, key, config),
            local_keys,
            batch_size=min(chunk_size, local_keys.shape[0]),
        )

    return run_particle_sharded(block, keys, mesh)


def _default_chunk(system, num_particles, itemsize, stages, memory_budget):
    per_particle = max(1, system.bytes_per_particle(itemsize, stages))
    return int(max(1, min(num_particles, memory_budget // per_particle)))


def sample(
    target: AbstractTarget | AbstractSystem,
    interpolant: AbstractInterpolant,
    schedule: AbstractSchedule,
    key: PRNGKeyArray,
    num_particles: int,
    *,
    steps: int | None = None,
    solver=None,
    rtol: float = 1e-3,
    atol: float = 1e-6,
    chunk_size: int | None = None,
    memory_budget: int = 2 * 2**30,
    path_ts: Sequence[float] | None = None,
    path_coords: int = 0,
    keep_states: bool = False,
    dtype=jnp.float32,
    max_steps: int = 100_000,
    on_nonfinite: Literal["raise", "warn", "ignore"] = "raise",
    sharding: Literal["particles", "dim"] | None = None,
    devices: Sequence[Any] | None = None,
    start: Literal["noise", "marginal"] = "noise",
) -> SampleResult:
    """Push ``num_particles`` noise samples through the probability-flow ODE (:func:`nsjax.solve`).

    ``dX/dt = tau'(t) b(tau(t), X)``, ``X(0) = c alpha(tau(0)) z``, ``t: 0 -> 1`` (docs/theory.md §1).

    Args:
        target: a target (full-``d`` particles) or a system (e.g. :class:`nsjax.reduction.ReducedGM`).
        interpolant: the interpolant (its ``noise_scale`` sets VP or VE).
        schedule: ``t -> tau``.
        key: PRNG key; particle ``b`` uses ``jax.random.split(key, num_particles)[b]`` whatever the
            chunking, so results do not depend on ``chunk_size``.
        num_particles: ensemble size ``>= 1``.
        steps: fixed number of steps ``N`` (``None``: adaptive, needs an adaptive solver).
        solver: a diffrax solver (default ``Euler()`` for fixed steps, ``Tsit5()`` adaptive).
        rtol, atol: PID tolerances of adaptive solves.
        chunk_size: particles per vmapped chunk (default: from ``memory_budget`` bytes).
        path_ts: times ``t`` at which to save ``overlap`` (``M_t``) and ``path_coords`` coordinates.
        keep_states: also return the final states (``particles x d`` floats: mind the memory).
        dtype: ``float32`` (default) or ``float64`` (needs ``jax_enable_x64``).
        max_steps: cap on adaptive solver steps per piece.
        on_nonfinite: what to do when a particle ends with NaN/inf (``max_steps`` exhaustion
            included): ``raise`` (default), ``warn`` or ``ignore``; the count is in
            ``SampleResult.nonfinite`` either way.
        sharding: ``None`` (one device), ``"particles"`` (the ensemble split across ``devices``:
            results equal one device's) or ``"dim"`` (each particle split across ``devices``,
            reductions become cross-device sums: equal to rounding); :mod:`nsjax.sharding`.
        devices: devices to shard over (default ``jax.devices()``, all hosts).
        start: ``"noise"`` (default: pure noise at ``tau(0)``, the signal ``beta(tau(0)) x1``
            dropped) or ``"marginal"`` (the exact law at ``tau(0)``; :mod:`nsjax.start`).

    Returns:
        :class:`SampleResult`; :func:`nsjax.features.estimate` turns its statistics into features.
    """
    system = with_start(target, interpolant, schedule, start)
    num_particles = check_dim("num_particles", num_particles)
    dtype = check_dtype(dtype)
    if steps is None:
        check_positive("rtol", rtol)
        check_positive("atol", atol)
    spec = steps if steps is not None else diffrax.PIDController(rtol=rtol, atol=atol)
    solver, spec = check_solve(interpolant, schedule, solver, spec)
    if not isinstance(on_nonfinite, str) or on_nonfinite not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_nonfinite must be 'raise', 'warn' or 'ignore', got {on_nonfinite!r}")
    if sharding is not None and sharding not in ("particles", "dim"):
        raise ValueError(f"sharding must be one of (None, 'particles', 'dim'), got {sharding!r}")
    max_steps = check_dim("max_steps", max_steps)
    memory_budget = check_dim("memory_budget", memory_budget)
    if chunk_size is not None:
        chunk_size = check_dim("chunk_size", chunk_size)
    try:
        path_ts = save_times(path_ts)
    except (TypeError, ValueError):
        raise TypeError(f"path_ts must be a sequence of times in [0, 1], got {path_ts!r}") from None
    if path_ts is not None and any(not 0.0 <= s <= 1.0 for s in path_ts):
        raise ValueError(f"path_ts must lie in [0, 1], got {path_ts}")
    path_coords = check_dim("path_coords", path_coords, low=0)
    target_dim = getattr(getattr(system, "target", None), "dim", None)
    if target_dim is not None and path_coords > target_dim:
        raise ValueError(f"path_coords must lie in [0, dim] = [0, {target_dim}], got {path_coords}")
    per_step, once = evaluations_per_step(solver)
    stages = per_step + once + getattr(solver, "stored_states", lambda: 0)()  # + multistep history
    mesh = None
    if sharding is not None:
        from .sharding import ShardedDim, ShardedSystem, make_mesh

        mesh = make_mesh(sharding, devices)
    system = system.with_dtype(dtype)
    if sharding == "dim":
        system = ShardedSystem(system, ShardedDim(mesh))
    if chunk_size is None:
        chunk_size = _default_chunk(system, num_particles, dtype.itemsize, stages, memory_budget)
    chunk_size = min(check_dim("chunk_size", chunk_size), num_particles)
    if sharding == "particles":  # chunks are per device
        chunk_size = min(chunk_size, -(-num_particles // mesh.size))
    config = _Config(
        steps=spec,
        solver=solver,
        save=None if path_ts is None else Save(path_ts, int(path_coords)),
        keep_states=bool(keep_states),
        max_steps=max_steps,
        dtype=dtype,
    )
    keys = jax.random.split(key, num_particles)
    start = time.perf_counter()
    if sharding == "particles":
        out = _run_particle_sharded(system, interpolant, schedule, keys, config, chunk_size, mesh)
    else:
        out = _run(system, interpolant, schedule, keys, config, chunk_size)
    if mesh is not None and jax.process_count() > 1:  # multi-host: every process gets all rows
        from jax.experimental import multihost_utils

        out = multihost_utils.process_allgather(out, tiled=True)
    out = jax.tree.map(np.asarray, jax.block_until_ready(out))
    wall = time.perf_counter() - start
    nonfinite = int((~out["finite"]).sum())
    exhausted = int((~out["successful"]).sum())
    result = SampleResult(
        statistics=out["statistics"],
        nfe=out["nfe"],
        num_steps=out["num_steps"],
        path_ts=np.asarray(path_ts) if path_ts is not None and "path" in out else None,
        path=out.get("path"),
        states=out.get("state"),
        wall_seconds=wall,
        chunk_size=chunk_size,
        nonfinite=nonfinite,
        max_steps_reached=exhausted,
        info={"solver": type(solver).__name__, "steps": steps, "schedule": type(schedule).__name__,
              "sharding": sharding, "num_devices": 1 if mesh is None else mesh.size},
        memory=memory_report(chunk_size * system.bytes_per_particle(dtype.itemsize, stages)),
    )
    if nonfinite:
        message = (
            f"{nonfinite} of {num_particles} particles ended non-finite (NaN/inf) with "
            f"schedule {type(schedule).__name__}, solver {type(solver).__name__}, steps {steps}"
            + (f", rtol {rtol}" if steps is None else "")
            + (f"; {exhausted} ran out of max_steps={max_steps}" if exhausted else "")
        )
        if on_nonfinite == "raise":
            raise FloatingPointError(message)
        if on_nonfinite == "warn":
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    return result
