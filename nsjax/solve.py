"""The solve: one particle of the probability-flow ODE ``dX/dt = tau'(t) b(tau(t), X)``, pure.

:func:`solve` integrates any system (:mod:`nsjax.systems`) from noise (``key=``) or from a given
state (``y0``) to ``t = 1`` with diffrax, and returns a :class:`Solution` pytree of JAX arrays. It
is a pure function of its arguments: it works under ``jax.jit``, ``jax.vmap``, ``jax.grad``
(fixed steps; reverse mode through diffrax's checkpointed adjoint) and ``shard_map``. Drivers
build on it: :func:`nsjax.sample` (ensembles, chunks, devices, NumPy out), :func:`nsjax.sweeps.sweep`
(compiled grids), flax_celeba's image sampler (a network as a system).

Steps (``steps=``), each a diffrax object or a thin wrapper:

- ``N`` (an ``int``): ``N`` steps in all, uniform within each schedule piece, breakpoints on the
  grid (:func:`step_grid`; ``diffrax.StepTo`` per piece);
- :class:`PieceSteps` ``(counts)``: traced per-piece counts of equal steps
  (``diffrax.ConstantStepSize``: a new ``N`` reuses the compiled program);
- ``diffrax.StepTo(ts)``: a user's grid on ``[0, 1]`` (host values) containing every breakpoint;
- ``diffrax.PIDController(rtol, atol)``: adaptive steps (an adaptive solver; the fused tableaus
  switch to their embedded-error twins).

Breakpoints are jump times: the solve restarts on each one and each piece integrates its own
smooth formula, so a stage evaluated on a breakpoint takes its piece's one-sided slope
(docs/theory.md §4). Solvers that read only the frame ``(alpha, beta, tau)`` and the denoiser at
their step points (exponential and multistep integrators, ``solver.joins_pieces``) never see the
rate ``tau'``, so a kink of ``t -> tau`` is invisible to them: they integrate all pieces in one
``diffeqsolve`` on the concatenated grid (:class:`PiecewiseSteps` for traced counts) and keep
their history across breakpoints (docs/theory.md §7). Schedules that stop at ``tau(1) < 1`` end with one denoising step
``X <- eta(tau(1), X)``, counted in ``nfe`` (docs/theory.md §5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_dim, check_positive
from ._types import Array, Float, Int, PRNGKeyArray
from .interpolants import AbstractInterpolant
from .schedules import AbstractSchedule
from .solvers import ADAPTIVE, adaptive_form, evaluations_per_step, is_adaptive
from .systems import AbstractSystem, Particles, as_system

__all__ = [
    "FlowTerm",
    "PieceSteps",
    "PiecewiseSteps",
    "Save",
    "Solution",
    "StepSpec",
    "check_solve",
    "piece_term",
    "solve",
    "step_grid",
]


class PieceSteps(eqx.Module):
    """``counts[k]`` equal steps on schedule piece ``k`` (traced: sweeps over ``N``)."""

    counts: Int[Array, " pieces"]


StepSpec = int | PieceSteps | diffrax.StepTo | diffrax.PIDController


class Save(eqx.Module):
    """What to save along the path: ``system.summary`` at times ``ts`` (``overlap`` ``M_t`` and
    the first ``coords`` coordinates), or ``fn(state)`` when given."""

    ts: tuple[float, ...] = eqx.field(static=True)
    coords: int = eqx.field(static=True, default=0)
    fn: Callable[[Any], Any] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if any(not 0.0 <= s <= 1.0 for s in self.ts):
            raise ValueError(f"save times ts must lie in [0, 1], got {self.ts}")
        if self.coords < 0:
            raise ValueError(f"coords must be >= 0, got {self.coords}")


class Solution(eqx.Module):
    """What :func:`solve` returns (JAX arrays; one particle, or a batch under ``vmap``)."""

    state: Any
    """The particle at ``t = 1`` (after the final denoising step when ``tau(1) < 1``)."""
    nfe: Int[Array, ""]
    """Velocity evaluations."""
    num_steps: Int[Array, ""]
    """Solver steps (rejected adaptive steps included)."""
    successful: Any
    """Whether every piece finished (``False``: ``max_steps`` ran out; ``state`` is then NaN)."""
    finite: Any
    """Whether every entry of ``state`` is finite."""
    path: Any = None
    """Summaries at :attr:`Save.ts`, leading axis time (``None`` without ``save``)."""


def step_grid(schedule: AbstractSchedule, steps: int) -> tuple[np.ndarray, ...]:
    """Per-piece uniform grids (float64 numpy) with ``steps`` steps in all, breakpoints on them.

    Piece ``k`` of length ``L_k`` gets ``floor(steps L_k)`` steps, the remainder going to the
    largest fractional parts (later pieces first on ties); every piece gets at least one step.
    """
    steps = check_dim("steps", steps)
    intervals = schedule.intervals()
    if steps < len(intervals):
        raise ValueError(f"steps must be >= {len(intervals)} (one per schedule piece), got {steps}")
    exact = [steps * (b - a) for a, b in intervals]
    counts = [max(1, math.floor(e)) for e in exact]
    order = sorted(range(len(exact)), key=lambda k: (exact[k] - math.floor(exact[k]), k), reverse=True)
    for k in order[: steps - sum(counts)]:
        counts[k] += 1
    while sum(counts) > steps:  # only when a short piece was raised to one step
        k = max(range(len(counts)), key=lambda j: counts[j])
        counts[k] -= 1
    return tuple(np.linspace(a, b, n + 1) for (a, b), n in zip(intervals, counts))


def _split_grid(schedule: AbstractSchedule, ts: Any) -> tuple[np.ndarray, ...]:
    """A user's grid on ``[0, 1]`` cut at the schedule's breakpoints (each must be on it)."""
    try:
        ts = np.asarray(ts, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise TypeError(
            f"steps: diffrax.StepTo ts must be numbers increasing strictly from 0 to 1, got {ts!r}"
        ) from None
    if ts.size < 2 or not np.all(np.diff(ts) > 0) or ts[0] != 0.0 or ts[-1] != 1.0:
        raise ValueError(f"steps: diffrax.StepTo ts must increase strictly from 0 to 1, got {ts.tolist()}")
    pieces = []
    for a, b in schedule.intervals():
        inside = ts[(ts >= a) & (ts <= b)]
        if inside[0] != a or inside[-1] != b:
            raise ValueError(
                f"steps: diffrax.StepTo ts must contain every schedule breakpoint {schedule.breakpoints}"
            )
        pieces.append(inside)
    return tuple(pieces)


def check_solve(
    interpolant: AbstractInterpolant,
    schedule: AbstractSchedule,
    solver: diffrax.AbstractSolver | None,
    steps: StepSpec | None,
) -> tuple[diffrax.AbstractSolver, StepSpec]:
    """The one validation of a solve's options (shared by every driver); returns the solver and
    step specification to use.

    - ``solver=None``: ``Euler()`` for fixed steps, ``Tsit5()`` for adaptive ones;
    - adaptive steps need an adaptive solver (fused tableaus switch to their embedded-error form);
    - ``N`` must be an integer ``>=`` the number of schedule pieces;
    - the schedule's own noise scale (process schedules) must equal the interpolant's.
    """
    if not isinstance(interpolant, AbstractInterpolant):
        raise TypeError(
            "interpolant must be an nsjax interpolant (Linear, Trig or Custom; nsjax.preset), "
            f"got {type(interpolant).__name__}"
        )
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(
            "schedule must be an nsjax schedule (an nsjax.schedules class or nsjax.preset), "
            f"got {type(schedule).__name__}"
        )
    schedule.check_noise_scale(interpolant.noise_scale)
    if steps is None:
        raise ValueError(
            "steps must be given: an int N, PieceSteps(counts), diffrax.StepTo(ts) or "
            "diffrax.PIDController(rtol, atol)"
        )
    adaptive = isinstance(steps, diffrax.PIDController)
    if solver is None:
        solver = diffrax.Tsit5() if adaptive else diffrax.Euler()
    if not isinstance(solver, diffrax.AbstractSolver):
        raise TypeError(
            "solver must be a diffrax solver instance (e.g. diffrax.Euler() or diffrax.Tsit5()), "
            f"got {solver!r}"
        )
    if adaptive:
        solver = adaptive_form(solver)
        if not is_adaptive(solver):
            raise ValueError(
                f"adaptive steps need an adaptive solver ({', '.join(ADAPTIVE)}), "
                f"got {type(solver).__name__}; pass a fixed step count instead"
            )
        check_positive("rtol", steps.rtol)
        check_positive("atol", steps.atol)
    elif isinstance(steps, diffrax.StepTo):
        _split_grid(schedule, steps.ts)
    elif isinstance(steps, PieceSteps):
        if jnp.shape(steps.counts) != (len(schedule.intervals()),):
            raise ValueError(
                f"steps: PieceSteps counts must have shape ({len(schedule.intervals())},) (one per "
                f"schedule piece), got {jnp.shape(steps.counts)}"
            )
        if not isinstance(steps.counts, jax.core.Tracer):
            counts = np.asarray(steps.counts)
            if not (np.issubdtype(counts.dtype, np.integer) and np.all(counts >= 1)):
                raise ValueError(
                    f"steps: PieceSteps counts must be integers >= 1, got {counts.tolist()}"
                )
    else:
        if isinstance(steps, (float, np.floating)) and float(steps).is_integer():
            steps = int(steps)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise TypeError(
                f"steps must be an int, PieceSteps, diffrax.StepTo or diffrax.PIDController, "
                f"got {type(steps).__name__}"
            )
        steps = check_dim("steps", steps)
        step_grid(schedule, steps)
    return solver, steps


class FlowTerm(diffrax.AbstractTerm):
    """The probability-flow term ``dX/dt = tau'(t) b(tau(t), X)`` of one schedule piece.

    Any diffrax solver sees an ordinary ODE term (:meth:`vf`); solvers that treat the linear part
    of the drift exactly (exponential and multistep integrators) also read the frame: the
    schedule's ``tau(t)`` (:meth:`frame`) and the posterior mean ``eta(tau(t), X)``
    (:meth:`denoise`).
    """

    system: Any
    interpolant: AbstractInterpolant
    schedule: AbstractSchedule
    piece: int | None = eqx.field(static=True)
    """The piece whose smooth formula applies at every ``t``; ``None``: the piecewise map
    (right-continuous at breakpoints; for solvers that never read ``tau'``)."""

    def _value(self, t):
        if self.piece is None:
            return self.schedule.value(t)
        return self.schedule.evaluate(t, self.piece)

    def frame(self, t) -> tuple[Any, Any, Any, Any]:
        """``(alpha, beta, c, tau')`` at ``t``: ``X = c alpha x0 + beta x1`` in law."""
        tau, tau_c, rate = self._value(t)
        interpolant = self.interpolant
        return interpolant.alpha(tau, tau_c), interpolant.beta(tau, tau_c), interpolant.noise_scale, rate

    def denoise(self, t, y) -> Any:
        """``eta(tau(t), y) = E[x1 | I_tau = y]``."""
        tau, tau_c, _ = self._value(t)
        return self.system.denoise(self.interpolant, tau, tau_c, y)

    def vf(self, t, y, args):
        tau, tau_c, rate = self._value(t)
        velocity = self.system.velocity(self.interpolant, tau, tau_c, y)
        return jax.tree.map(lambda v: rate * v, velocity)

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return jax.tree.map(lambda v: v * control, vf)


def piece_term(system, interpolant, schedule, piece: int | None) -> FlowTerm:
    """``dX/dt = tau'(t) b(tau(t), X)`` with piece ``piece``'s own formula (any ``t``); ``None``:
    the piecewise map."""
    return FlowTerm(system, interpolant, schedule, piece)


class PiecewiseSteps(diffrax.AbstractStepSizeController):
    """Equal steps within each piece, ``counts[k]`` of them on ``[edges[k], edges[k + 1]]``, in
    one ``diffeqsolve`` (``counts`` traced: a new ``N`` reuses the compiled program).

    Step ``i`` (``0 <= i <= sum(counts)``) ends at ``t_i = edges[k] + (i - C_k) (edges[k + 1] -
    edges[k]) / counts[k]``, with ``C_k = counts[0] + ... + counts[k - 1] <= i`` and ``k`` the
    last piece that has started; the breakpoints and ``t = 1`` are hit exactly.
    """

    edges: tuple[float, ...] = eqx.field(static=True)
    counts: Int[Array, " pieces"]

    def wrap(self, direction):
        return self

    def time(self, i, dtype):
        """``t_i`` (clipped to the last edge)."""
        counts = jnp.asarray(self.counts).astype(jnp.int32)
        ends = jnp.cumsum(counts)
        starts = ends - counts
        k = jnp.sum((i >= ends[:-1]).astype(jnp.int32))
        lo = jnp.asarray(self.edges[:-1], dtype)[k]
        hi = jnp.asarray(self.edges[1:], dtype)[k]
        frac = (i - starts[k]).astype(dtype) / counts[k].astype(dtype)
        t = jnp.where(frac >= 1, hi, lo + frac * (hi - lo))
        return jnp.where(i >= ends[-1], jnp.asarray(self.edges[-1], dtype), t)

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        dtype = jnp.result_type(t0)
        return self.time(jnp.ones((), jnp.int32), dtype), jnp.full((), 2, jnp.int32)

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state):
        next_t1 = self.time(state, jnp.result_type(t1))
        return True, t1, next_t1, False, state + 1, diffrax.RESULTS.successful


INITIAL_STEPS = 64
"""An adaptive piece's first step is ``1/INITIAL_STEPS`` of the piece (the controller adapts it)."""


def adaptive_steps(steps) -> bool:
    return isinstance(steps, diffrax.PIDController)


def _controller(steps, piece: int, t0: float, t1: float, grids, dtype):
    """``(stepsize_controller, dt0, max_steps)`` of one piece."""
    if grids is not None:
        ts = grids[piece]
        return diffrax.StepTo(ts=jnp.asarray(ts, dtype)), None, len(ts) - 1
    if isinstance(steps, PieceSteps):
        return diffrax.ConstantStepSize(), (t1 - t0) / steps.counts[piece].astype(dtype), None
    # Adaptive: a fixed first step, not diffrax's finite-difference guess (dt0=None), which is
    # rounding-dominated in float32 and made the step sequence depend on the batch (chunk) shape.
    return steps, jnp.asarray((t1 - t0) / INITIAL_STEPS, dtype), None


def solve(
    system: AbstractSystem | Any,
    interpolant: AbstractInterpolant,
    schedule: AbstractSchedule,
    y0: Any = None,
    *,
    key: PRNGKeyArray | None = None,
    steps: StepSpec,
    solver: diffrax.AbstractSolver | None = None,
    save: Save | None = None,
    max_steps: int = 100_000,
    dtype: Any = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> Solution:
    """One particle from noise to data through ``dX/dt = tau'(t) b(tau(t), X)`` (docs/theory.md §1).

    Args:
        system: a system or a target (wrapped into full-``d`` :class:`~nsjax.systems.Particles`).
        interpolant: ``I_tau = alpha x0 + beta x1``, noise scale ``c``.
        schedule: ``t -> tau``.
        y0: the state at ``t = 0``; or give ``key`` to start from pure noise
            ``c alpha(tau(0)) z`` (``system.init``).
        key: PRNG key of the initial noise (exactly one of ``y0``, ``key``).
        steps: ``N``, :class:`PieceSteps`, ``diffrax.StepTo`` or ``diffrax.PIDController``.
        solver: a diffrax solver (default ``Euler()``; ``Tsit5()`` for adaptive steps).
        save: path summaries to keep (:class:`Save`).
        max_steps: cap on adaptive steps per piece (fixed grids use exactly their length).
        dtype: of the state and times (default: ``y0``'s, else float32).
        adjoint: how to differentiate the solve (default diffrax's
            ``RecursiveCheckpointAdjoint``: reverse mode, ``jax.grad``); pass
            ``diffrax.ForwardMode()`` for forward mode (``jax.jvp``, ``jax.jacfwd``).

    Returns:
        :class:`Solution`. A piece that runs out of ``max_steps`` leaves ``successful`` False and
        the state NaN, so that no failed particle can pass for a result.
    """
    system = as_system(system)
    solver, steps = check_solve(interpolant, schedule, solver, steps)
    if (y0 is None) == (key is None):
        raise ValueError("give exactly one of y0 (a state) and key (start from noise)")
    if isinstance(key, (str, bytes, bool)):
        raise TypeError(f"key must be a PRNG key (jax.random.key) or the system's init input, got {key!r}")
    if save is not None and not isinstance(save, Save):
        raise TypeError(f"save must be an nsjax.solve.Save or None, got {save!r}")
    max_steps = check_dim("max_steps", max_steps)
    if dtype is not None:
        try:
            dtype = jnp.dtype(dtype)
        except (TypeError, ValueError):
            raise TypeError(f"dtype must be a floating dtype (float32 or float64), got {dtype!r}") from None
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"dtype must be a floating dtype (float32 or float64), got {dtype}")
    if y0 is not None and isinstance(system, Particles) and eqx.is_array(y0):
        dim = system.target.dim
        if jnp.shape(y0) != (dim,):
            raise ValueError(f"y0 must have shape (dim,) = ({dim},), got {jnp.shape(y0)}")
    if dtype is None:
        dtype = jax.tree.leaves(y0)[0].dtype if y0 is not None else jnp.float32
    dtype = jnp.dtype(dtype)
    if y0 is None:
        start = schedule.evaluate(jnp.zeros((), dtype), 0)
        scale = interpolant.noise_scale * interpolant.alpha(start.tau, start.tau_c)
        y0 = system.init(key, jnp.asarray(scale, dtype), dtype)
    per_step, once = evaluations_per_step(solver)
    if isinstance(steps, diffrax.StepTo):
        grids = _split_grid(schedule, steps.ts)
    elif isinstance(steps, int):
        grids = step_grid(schedule, steps)
    else:
        grids = None
    y = y0
    nfe = jnp.zeros((), jnp.int32)
    num_steps = jnp.zeros((), jnp.int32)
    successful = jnp.ones((), bool)
    path_parts = []
    intervals = schedule.intervals()
    piecewise = None
    joined = len(intervals) > 1 and getattr(solver, "joins_pieces", False) and not adaptive_steps(steps)
    if joined:  # one solve across the breakpoints: the solver reads no tau'
        if grids is not None:
            grids = (np.concatenate([grids[0], *(g[1:] for g in grids[1:])]),)
        else:
            edges = (0.0, *schedule.breakpoints, 1.0)
            piecewise = PiecewiseSteps(edges, jnp.asarray(steps.counts))
        intervals = ((0.0, 1.0),)
    for piece, (t0, t1) in enumerate(intervals):
        term = piece_term(system, interpolant, schedule, None if joined else piece)
        subs = [diffrax.SubSaveAt(t1=True)]
        if save is not None:
            in_piece = (lambda s: s >= t0) if piece == 0 else (lambda s: s > t0)
            piece_ts = [s for s in save.ts if in_piece(s) and s <= t1]
            if piece_ts:
                fn = save.fn or (lambda state: system.summary(state, save.coords))
                subs.append(
                    diffrax.SubSaveAt(ts=jnp.asarray(piece_ts, dtype), fn=lambda t, y, args: fn(y))
                )
        if piecewise is not None:
            controller, dt0, piece_max = piecewise, None, None
        else:
            controller, dt0, piece_max = _controller(steps, piece, t0, t1, grids, dtype)
        sol = diffrax.diffeqsolve(
            term,
            solver,
            t0=jnp.asarray(t0, dtype),
            t1=jnp.asarray(t1, dtype),
            dt0=dt0,
            y0=y,
            saveat=diffrax.SaveAt(subs=subs),
            stepsize_controller=controller,
            max_steps=piece_max or max_steps,
            throw=False,
            adjoint=diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint,
        )
        y = jax.tree.map(lambda leaf: leaf[-1], sol.ys[0])
        if len(subs) > 1:
            path_parts.append(sol.ys[1])
        num_steps = num_steps + sol.stats["num_steps"]
        nfe = nfe + per_step * sol.stats["num_steps"] + once
        ok = sol.result == diffrax.RESULTS.successful
        successful = successful & ok
        y = jax.tree.map(lambda leaf: jnp.where(ok, leaf, jnp.nan), y)
    if not schedule.ends_at_data:
        end = schedule.evaluate(jnp.ones((), dtype), len(schedule.intervals()) - 1)
        y = system.denoise(interpolant, end.tau, end.tau_c, y)
        nfe = nfe + 1
    path = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *path_parts) if path_parts else None
    return Solution(y, nfe, num_steps, successful, system.finite(y), path)


def save_times(ts: Sequence[float] | Float[Array, " T"] | None) -> tuple[float, ...] | None:
    """Host floats of a path-time list (``None`` passes through)."""
    if ts is None:
        return None
    return tuple(float(s) for s in np.asarray(ts, dtype=np.float64).ravel())
