"""The sampler: probability-flow ODE ``dX/dt = tau'(t) b(tau(t), X)`` for an ensemble (MATH.md §1).

One entry point, :func:`sample`, integrates any per-particle system (the full ``d``-dimensional
particles of a target, or the exact GM reduction of :mod:`nsjax.reduction`) with diffrax:

- **Fixed steps** (``steps=N``, any diffrax fixed-step solver: ``Euler``, ``Heun``, ``Midpoint``,
  ``Ralston``, :class:`RK4`, ...): a piecewise-uniform grid in ``t`` with every schedule
  breakpoint on it (``N`` times each piece's length steps per piece, largest remainders first).
- **Adaptive steps** (``steps=None``: ``Tsit5``/``Dopri5``/``Bosh3`` with a PID controller at
  ``rtol``/``atol``), each particle with its own steps.

Breakpoints are jump times: the solve restarts on each one (as diffrax's ``jump_ts`` does) and
each piece integrates its own smooth formula, so a stage evaluated on a breakpoint takes its
piece's one-sided slope (MATH.md §4).

The end point ``t = 1`` never produces NaN or inf: targets write the velocity as
``beta' eta - c^2 (alpha alpha') score`` with ``alpha alpha'`` finite (:mod:`nsjax.interpolants`);
the GM posterior is finite at ``alpha = 0`` in closed form, and a target without a density (CW)
uses the exact end-point value ``E[x0 | I_1 = x] = 0`` there. Any particle that still ends
non-finite is reported (``on_nonfinite``), never silently averaged.

Memory is bounded: particles run in chunks of ``chunk_size`` (chosen from ``memory_budget``
when not given) through ``jax.lax.map``; per-particle statistics (and optional low-dimensional
path summaries) are kept, whole states only on request.
"""

from __future__ import annotations

import abc
import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from diffrax._local_interpolation import ThirdOrderHermitePolynomialInterpolation

from ._checks import check_dim, check_positive
from ._types import Array, PRNGKeyArray
from .interpolants import AbstractInterpolant
from .schedules import AbstractSchedule
from .solvers import AbstractFusedRK, FusedHeun, FusedMidpoint, FusedRalston, FusedRK4
from .targets.base import AbstractTarget

__all__ = [
    "AbstractSystem",
    "Particles",
    "RK4",
    "SampleResult",
    "SolveOptions",
    "piece_term",
    "sample",
    "solve_particle",
    "step_grid",
    "evaluations_per_step",
    "SOLVERS",
    "make_solver",
    "memory_report",
    "step_bytes_per_coordinate",
    "xla_options",
]


# -- solvers -------------------------------------------------------------------------------------
class RK4(diffrax.AbstractERK):
    """The classical fourth-order Runge–Kutta method (fixed steps only: no embedded error)."""

    tableau = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls = ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


SOLVERS: dict[str, Any] = {
    "euler": diffrax.Euler,
    # fixed steps: fused forms of the tableaus (nsjax.solvers), equal to diffrax's to rounding
    "heun": FusedHeun,
    "midpoint": FusedMidpoint,
    "ralston": FusedRalston,
    "rk4": FusedRK4,
    # diffrax's generic Runge–Kutta (stacked stages, error estimate, dense output)
    "diffrax-heun": diffrax.Heun,
    "diffrax-midpoint": diffrax.Midpoint,
    "diffrax-ralston": diffrax.Ralston,
    "diffrax-rk4": RK4,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
}
ADAPTIVE = ("bosh3", "tsit5", "dopri5", "heun")


def make_solver(name: str):
    """A solver by name (``SOLVERS``): ``heun``/``midpoint``/``ralston``/``rk4`` are the fused
    fixed-step forms (:mod:`nsjax.solvers`); ``diffrax-<name>`` diffrax's generic ones."""
    if name not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {name!r}")
    return SOLVERS[name]()


def evaluations_per_step(solver) -> tuple[int, int]:
    """``(per_step, once)``: velocity evaluations per step and once per solve.

    First-same-as-last Runge–Kutta tableaus reuse the last stage (``once = 1`` for the first
    evaluation). Checked against a run-time counter in ``tests/test_solve.py``.
    """
    custom = getattr(solver, "evaluations_per_step", None)
    if custom is not None:
        return custom()
    if isinstance(solver, diffrax.Euler):
        return 1, 0
    if isinstance(solver, diffrax.AbstractERK):
        stages = len(solver.tableau.b_sol)
        return (stages - 1, 1) if solver.tableau.fsal else (stages, 0)
    raise TypeError(f"unknown evaluation count for solver {type(solver).__name__}")


# -- systems -------------------------------------------------------------------------------------
class AbstractSystem(eqx.Module):
    """A per-particle ODE system driven by an interpolant's velocity."""

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, scale: Array, dtype) -> Any:
        """One particle at the start: pure noise ``scale * z``, ``scale = c alpha(tau(0))``."""

    @abc.abstractmethod
    def velocity(self, interpolant: AbstractInterpolant, tau, tau_c, state) -> Any:
        """``b(tau, state)``."""

    @abc.abstractmethod
    def denoise(self, interpolant: AbstractInterpolant, tau, tau_c, state) -> Any:
        """``eta(tau, state)`` in state coordinates (the final denoising step)."""

    @abc.abstractmethod
    def statistics(self, state) -> dict[str, Array]:
        """Per-particle feature statistics (:mod:`nsjax.features`)."""

    @abc.abstractmethod
    def summary(self, state, num_coords: int) -> dict[str, Array]:
        """Low-dimensional path summary: ``overlap`` (``M_t``) and the first coordinates."""

    @abc.abstractmethod
    def bytes_per_particle(self, itemsize: int, stages: int) -> int:
        """Working memory of one particle during a solve."""

    def finite(self, state) -> Array:
        """Whether every entry of ``state`` is finite."""
        leaves = jax.tree.leaves(state)
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


class Particles(AbstractSystem):
    """Full ``d``-dimensional particles of a target (state: ``x`` of shape ``(d,)``)."""

    target: AbstractTarget

    def init(self, key, scale, dtype):
        return scale * jax.random.normal(key, (self.target.dim,), dtype)

    def velocity(self, interpolant, tau, tau_c, state):
        return self.target.velocity(interpolant, tau, tau_c, state)

    def denoise(self, interpolant, tau, tau_c, state):
        return self.target.denoise(interpolant, tau, tau_c, state)[0]

    def statistics(self, state):
        return self.target.statistics(state)

    def summary(self, state, num_coords):
        return {"overlap": self.target.order_parameter(state), "coords": state[:num_coords]}

    def bytes_per_particle(self, itemsize, stages):
        return self.target.dim * itemsize * (stages + 4)


def as_system(target_or_system) -> AbstractSystem:
    """Wrap a target into :class:`Particles`; pass systems through."""
    if isinstance(target_or_system, AbstractSystem):
        return target_or_system
    if isinstance(target_or_system, AbstractTarget):
        return Particles(target_or_system)
    raise TypeError(f"expected a target or a system, got {type(target_or_system).__name__}")


# -- grids ---------------------------------------------------------------------------------------
def step_grid(schedule: AbstractSchedule, steps: int) -> tuple[np.ndarray, ...]:
    """Per-piece uniform grids (float64 numpy) with ``steps`` steps in all, breakpoints on them.

    Piece ``k`` of length ``L_k`` gets ``floor(steps L_k)`` steps, the remainder going to the
    largest fractional parts (later pieces first on ties); every piece gets at least one step.
    """
    steps = check_dim("steps", steps)
    intervals = schedule.intervals()
    if steps < len(intervals):
        raise ValueError(
            f"steps must be >= {len(intervals)} (one per schedule piece), got {steps}"
        )
    exact = [steps * (b - a) for a, b in intervals]
    counts = [max(1, math.floor(e)) for e in exact]
    order = sorted(range(len(exact)), key=lambda k: (exact[k] - math.floor(exact[k]), k), reverse=True)
    for k in order[: steps - sum(counts)]:
        counts[k] += 1
    while sum(counts) > steps:  # only when a short piece was raised to one step
        k = max(range(len(counts)), key=lambda j: counts[j])
        counts[k] -= 1
    return tuple(np.linspace(a, b, n + 1) for (a, b), n in zip(intervals, counts))


# -- results -------------------------------------------------------------------------------------
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
    info: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    """Memory report (:func:`memory_report`): ``estimated_bytes_per_device`` (chunk working set
    from ``bytes_per_particle``), ``peak_rss_bytes`` (process high-water mark so far) and
    ``device_peak_bytes`` (``memory_stats()['peak_bytes_in_use']`` where the backend has it)."""


# -- the solve -----------------------------------------------------------------------------------
class SolveOptions(eqx.Module):
    """Static options of one particle's solve (:func:`solve_particle`)."""

    steps: int | None = eqx.field(static=True)
    solver: Any = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    path_ts: tuple[float, ...] | None = eqx.field(static=True)
    path_coords: int = eqx.field(static=True)
    keep_states: bool = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    dtype: Any = eqx.field(static=True)


def piece_term(system, interpolant, schedule, piece: int) -> diffrax.ODETerm:
    """``dX/dt = tau'(t) b(tau(t), X)`` with piece ``piece``'s own formula (any ``t``)."""

    def vector_field(t, y, args):
        tau, tau_c, rate = schedule.evaluate(t, piece)
        velocity = system.velocity(interpolant, tau, tau_c, y)
        return jax.tree.map(lambda v: rate * v, velocity)

    return diffrax.ODETerm(vector_field)


def solve_particle(
    system: AbstractSystem,
    interpolant: AbstractInterpolant,
    schedule: AbstractSchedule,
    key: PRNGKeyArray,
    config: SolveOptions,
    step_counts: Array | None = None,
) -> dict[str, Any]:
    """One particle from noise to data: ``init``, the pieces, the final denoising step.

    Steps per piece: ``step_grid(schedule, config.steps)`` (``StepTo``) when ``config.steps`` is
    set; else the traced ``step_counts[piece]`` equal steps (``ConstantStepSize``, for compiled
    sweeps over ``N``) when given; else a PID controller at ``config.rtol``/``config.atol``.
    Returns ``statistics``, ``nfe``, ``num_steps``, ``finite`` and, as asked, ``path``/``state``.
    """
    dtype = config.dtype
    start = schedule.evaluate(jnp.zeros((), dtype), 0)
    scale = interpolant.noise_scale * interpolant.alpha(start.tau, start.tau_c)
    y = system.init(key, scale.astype(dtype), dtype)
    per_step, once = evaluations_per_step(config.solver)
    grids = step_grid(schedule, config.steps) if config.steps is not None else None
    fixed = grids is not None or step_counts is not None
    nfe = jnp.zeros((), jnp.int32)
    num_steps = jnp.zeros((), jnp.int32)
    path_parts = []
    for piece, (t0, t1) in enumerate(schedule.intervals()):
        term = piece_term(system, interpolant, schedule, piece)
        subs = [diffrax.SubSaveAt(t1=True)]
        piece_ts = None
        if config.path_ts is not None:
            lo_ok = (lambda s: s >= t0) if piece == 0 else (lambda s: s > t0)
            piece_ts = [s for s in config.path_ts if lo_ok(s) and s <= t1]
            if piece_ts:
                subs.append(
                    diffrax.SubSaveAt(
                        ts=jnp.asarray(piece_ts, dtype),
                        fn=lambda t, y, args: system.summary(y, config.path_coords),
                    )
                )
        if grids is not None:
            controller, dt0 = diffrax.StepTo(ts=jnp.asarray(grids[piece], dtype)), None
        elif step_counts is not None:
            controller = diffrax.ConstantStepSize()
            dt0 = (t1 - t0) / step_counts[piece].astype(dtype)
        else:
            controller = diffrax.PIDController(rtol=config.rtol, atol=config.atol)
            dt0 = None
        sol = diffrax.diffeqsolve(
            term,
            config.solver,
            t0=jnp.asarray(t0, dtype),
            t1=jnp.asarray(t1, dtype),
            dt0=dt0,
            y0=y,
            saveat=diffrax.SaveAt(subs=subs),
            stepsize_controller=controller,
            max_steps=config.max_steps,
            throw=False,
        )
        y = jax.tree.map(lambda leaf: leaf[-1], sol.ys[0])
        if len(subs) > 1:
            path_parts.append(sol.ys[1])
        steps_here = sol.stats["num_steps"]
        num_steps = num_steps + steps_here
        extra = 0 if fixed else _initial_step_evaluations(config.solver)
        nfe = nfe + per_step * steps_here + once + extra
        failed = sol.result != diffrax.RESULTS.successful
        y = jax.tree.map(lambda leaf: jnp.where(failed, jnp.nan, leaf), y)
    if not schedule.ends_at_data:
        end = schedule.evaluate(jnp.ones((), dtype), len(schedule.intervals()) - 1)
        y = system.denoise(interpolant, end.tau, end.tau_c, y)
        nfe = nfe + 1
    out = {
        "statistics": system.statistics(y),
        "nfe": nfe,
        "num_steps": num_steps,
        "finite": system.finite(y),
    }
    if path_parts:
        out["path"] = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *path_parts)
    if config.keep_states:
        out["state"] = y
    return out


def _initial_step_evaluations(solver) -> int:
    """Evaluations diffrax spends choosing the first adaptive step beyond ``once``: none, as
    counted at run time (``tests/test_solve.py::test_nfe_matches_counted_evaluations``)."""
    del solver
    return 0


def xla_options() -> dict[str, str]:
    """Per-compile XLA options of the solve. CPU: reductions stay in XLA's own fused loops
    instead of YNNPACK library calls (``xla_cpu_experimental_ynn_fusion_type``), measured ~25%
    less time per Euler step at ``d = 1e6`` (``benchmarks/RESULTS.md``); other backends, or a
    jaxlib that no longer knows the option: none."""
    return dict(_accepted_options(jax.default_backend()))


@functools.cache
def _accepted_options(backend: str) -> tuple[tuple[str, str], ...]:
    if backend != "cpu":
        return ()
    options = {"xla_cpu_experimental_ynn_fusion_type": ""}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except Exception:  # an unknown option is an error at compile time
        return ()
    return tuple(options.items())


def _jit(fun):
    """``eqx.filter_jit`` semantics (arrays traced, everything else static) with :func:`xla_options`."""

    @functools.cache
    def compiled(options: tuple[tuple[str, str], ...]):
        def inner(dynamic, static):
            return fun(*eqx.combine(dynamic, static))

        return jax.jit(inner, static_argnums=1, compiler_options=dict(options))

    @functools.wraps(fun)
    def wrapper(*args):
        dynamic, static = eqx.partition(args, eqx.is_array)
        nested = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(dynamic))
        options = () if nested else tuple(sorted(xla_options().items()))  # top-level jit only
        return compiled(options)(dynamic, static)

    return wrapper


@_jit
def _run(system, interpolant, schedule, keys, config: SolveOptions, chunk_size: int):
    return jax.lax.map(
        lambda key: solve_particle(system, interpolant, schedule, key, config),
        keys,
        batch_size=chunk_size,
    )


# -- sharding and memory (nsjax.sharding) ---------------------------------------------------------
@_jit
def _run_particle_sharded(system, interpolant, schedule, keys, config: SolveOptions, chunk_size, mesh):
    from .sharding import run_particle_sharded

    def block(local_keys):
        return jax.lax.map(
            lambda key: solve_particle(system, interpolant, schedule, key, config),
            local_keys,
            batch_size=min(chunk_size, local_keys.shape[0]),
        )

    return run_particle_sharded(block, keys, mesh)


def _peak_rss_bytes() -> int:
    """The process' resident-set high-water mark.

    Linux: ``VmHWM`` of ``/proc/self/status`` (this address space only: ``ru_maxrss`` survives
    ``execve``, so a child of a large parent would report the parent's peak); elsewhere
    ``ru_maxrss``.
    """
    import resource
    import sys

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def step_bytes_per_coordinate(
    target: AbstractTarget, interpolant: AbstractInterpolant, schedule: AbstractSchedule, solver,
    particles: int = 8, t: float = 0.1,
) -> float:
    """XLA's count (``cost_analysis``) of the bytes one compiled step accesses, per coordinate of
    ``particles`` float32 particles, with the engine's compile options (:func:`xla_options`): what
    a step reads and writes, stage states stored or not (``benchmarks/throughput.py``)."""
    term = piece_term(Particles(target), interpolant, schedule, 0)
    t0, t1 = jnp.float32(t), jnp.float32(t + 0.01)  # the engine's times are in the state's dtype

    def step(y0):
        state = solver.init(term, t0, t1, y0, None)
        return solver.step(term, t0, t1, y0, None, state, False)[0]

    compiled = jax.jit(jax.vmap(step), compiler_options=xla_options())
    compiled = compiled.lower(jnp.ones((particles, target.dim), jnp.float32)).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # a list in older jaxlibs
    return cost["bytes accessed"] / (particles * target.dim)


def memory_report(estimated_bytes_per_device: int) -> dict[str, Any]:
    """The estimate, the process' peak RSS and each device's peak bytes (where reported)."""
    report: dict[str, Any] = {
        "estimated_bytes_per_device": int(estimated_bytes_per_device),
        "peak_rss_bytes": _peak_rss_bytes(),
        "device_peak_bytes": None,
    }
    peaks = []
    for device in jax.local_devices():
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    if peaks:
        report["device_peak_bytes"] = max(peaks)
    return report


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
) -> SampleResult:
    """Push ``num_particles`` noise samples through the probability-flow ODE.

    ``dX/dt = tau'(t) b(tau(t), X)``, ``X(0) = c alpha(tau(0)) z``, ``t: 0 -> 1`` (MATH.md §1).

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
        max_steps: cap on solver steps per piece.
        on_nonfinite: what to do when a particle ends with NaN/inf: ``raise`` (default), ``warn``
            or ``ignore``; the count is in ``SampleResult.nonfinite`` either way.
        sharding: ``None`` (one device), ``"particles"`` (the ensemble split across ``devices``:
            results equal one device's) or ``"dim"`` (each particle split across ``devices``,
            reductions become cross-device sums: equal to rounding); :mod:`nsjax.sharding`.
        devices: devices to shard over (default ``jax.devices()``, all hosts).

    Returns:
        :class:`SampleResult`; :func:`nsjax.features.estimate` turns its statistics into features.
    """
    system = as_system(target)
    num_particles = check_dim("num_particles", num_particles)
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype float64 needs 64-bit mode: call jax.config.update('jax_enable_x64', True) first"
        )
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if solver is None:
        solver = diffrax.Euler() if steps is not None else diffrax.Tsit5()
    if steps is None and isinstance(solver, AbstractFusedRK) and solver.adaptive is not None:
        solver = solver.adaptive()  # same tableau, diffrax's embedded error for step control
    if steps is None:
        if isinstance(solver, (diffrax.Euler, RK4)) or not isinstance(solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(
                f"steps=None asks for adaptive steps, which solver {type(solver).__name__} cannot "
                f"take; pass steps=N or an adaptive solver ({', '.join(ADAPTIVE)})"
            )
        check_positive("rtol", rtol)
        check_positive("atol", atol)
    else:
        steps = check_dim("steps", steps)
    if on_nonfinite not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_nonfinite must be 'raise', 'warn' or 'ignore', got {on_nonfinite!r}")
    per_step, once = evaluations_per_step(solver)
    mesh = None
    if sharding is not None:
        from .sharding import ShardedDim, ShardedSystem, make_mesh

        mesh = make_mesh(sharding, devices)
        if sharding == "dim":
            system = ShardedSystem(system, ShardedDim(mesh))
    if chunk_size is None:
        chunk_size = _default_chunk(system, num_particles, dtype.itemsize, per_step + once, memory_budget)
    chunk_size = min(check_dim("chunk_size", chunk_size), num_particles)
    if sharding == "particles":  # chunks are per device
        chunk_size = min(chunk_size, -(-num_particles // mesh.size))
    if path_ts is not None:
        path_ts = tuple(float(s) for s in np.asarray(path_ts, dtype=np.float64).ravel())
        if any(not 0.0 <= s <= 1.0 for s in path_ts):
            raise ValueError("path_ts must lie in [0, 1]")
    config = SolveOptions(
        steps=steps,
        solver=solver,
        rtol=float(rtol),
        atol=float(atol),
        path_ts=path_ts,
        path_coords=int(path_coords),
        keep_states=bool(keep_states),
        max_steps=int(max_steps),
        dtype=dtype,
    )
    if isinstance(system, Particles):
        system = Particles(system.target.with_dtype(dtype))
    elif sharding == "dim" and isinstance(system.system, Particles):
        system = eqx.tree_at(lambda s: s.system, system, Particles(system.system.target.with_dtype(dtype)))
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
        info={"solver": type(solver).__name__, "steps": steps, "schedule": type(schedule).__name__,
              "sharding": sharding, "num_devices": 1 if mesh is None else mesh.size},
        memory=memory_report(chunk_size * system.bytes_per_particle(dtype.itemsize, per_step + once)),
    )
    if nonfinite:
        message = (
            f"{nonfinite} of {num_particles} particles ended non-finite (NaN/inf) with "
            f"schedule {type(schedule).__name__}, solver {type(solver).__name__}, steps {steps}"
            + (f", rtol {rtol}" if steps is None else "")
        )
        if on_nonfinite == "raise":
            raise FloatingPointError(message)
        if on_nonfinite == "warn":
            import warnings

            warnings.warn(message, RuntimeWarning, stacklevel=2)
    return result
